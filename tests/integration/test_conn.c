/* One server, plain TCP: handshake variants, every RESP reply type, deep
 * pipelines answered in order, and the per-connection memory cap; and a fake
 * server for replies no real Redis sends. */
#include "pool_env.h"
#include "tp/commands.h"
#include "tp/error.h"
#include "tp/resp.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start(const tp_test_redis_opts_t *opts) {
    cr_assert_eq(tp_test_env_start(&env, &srv, opts), 0);
}

static void teardown(void) {
    tp_test_env_stop(&env);
}

/* A deep queue: some tests queue 100,000 commands, or a 4 MiB value, before running the loop,
 * more than the default REDIS_MAX_QUEUED_BYTES; the cap has tests of its own. */
static void start_plain(void) {
    start(NULL);
    env.cfg.redis.max_queued_bytes = 64u << 20;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "pool not ready: %s",
                 tp_pool_last_error(&env.pool));
}

TestSuite(conn, .fini = teardown);

/* A write through the pool is visible to redis-cli. */
Test(conn, plain_tcp_set_get, .init = start_plain) {
    tp_test_result_t r = tp_test_command(&env, "SET", "greeting", "hello", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.str, "OK");
    char out[64];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "greeting", NULL);
    cr_assert_str_eq(out, "hello");
}

/* Status, error, integer, nil, bulk (binary and empty) replies. */
Test(conn, scalar_reply_types, .init = start_plain) {
    tp_test_result_t r = tp_test_command(&env, "PING", NULL);
    cr_assert_eq(r.type, TP_REPLY_STATUS);
    cr_assert_str_eq(r.str, "PONG");

    r = tp_test_command(&env, "NOSUCHCOMMAND", NULL);
    cr_assert_eq(r.status, TP_EREPLY);
    cr_assert_eq(r.type, TP_REPLY_ERROR);
    cr_assert(strstr(r.str, "unknown command") != NULL, "%s", r.str);

    r = tp_test_command(&env, "INCRBY", "n", "-42", NULL);
    cr_assert_eq(r.type, TP_REPLY_INTEGER);
    cr_assert_eq(r.integer, -42);

    r = tp_test_command(&env, "GET", "missing", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.type, TP_REPLY_NIL);

    const char *argv[] = {"SET", "bin", "a\0b\r\nc"};
    size_t lens[] = {3, 3, 6};
    tp_test_result_t set = {0};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &set, 3, argv, lens), 0);
    tp_test_run_until(&env.loop, tp_test_flag_set, &set.done, 5000);
    r = tp_test_command(&env, "GET", "bin", NULL);
    cr_assert_eq(r.type, TP_REPLY_STRING);
    cr_assert_eq(r.len, 6);
    cr_assert(memcmp(r.str, "a\0b\r\nc", 6) == 0);

    tp_test_command(&env, "SET", "empty", "", NULL);
    r = tp_test_command(&env, "GET", "empty", NULL);
    cr_assert_eq(r.type, TP_REPLY_STRING);
    cr_assert_eq(r.len, 0);
}

typedef struct {
    bool done;
    bool ok;
} nested_t;

/* Checks {1, {"two", {3}}, nil, {}} as returned by the Lua script below. */
static void on_nested(void *data, int status, const tp_reply_t *r) {
    nested_t *n = data;
    n->done = true;
    n->ok = status == 0 && r->type == TP_REPLY_ARRAY && r->elements == 4 &&
            r->element[0]->type == TP_REPLY_INTEGER && r->element[0]->integer == 1 &&
            r->element[1]->type == TP_REPLY_ARRAY && r->element[1]->elements == 2 &&
            r->element[1]->element[0]->type == TP_REPLY_STRING &&
            strcmp(r->element[1]->element[0]->str, "two") == 0 &&
            r->element[1]->element[1]->element[0]->integer == 3 &&
            r->element[2]->type == TP_REPLY_NIL && r->element[3]->type == TP_REPLY_ARRAY &&
            r->element[3]->elements == 0;
}

/* Nested arrays, a nil inside an array and an empty array. */
Test(conn, nested_array_reply, .init = start_plain) {
    const char *argv[] = {"EVAL", "return {1, {'two', {3}}, false, {}}", "0"};
    nested_t n = {0};
    cr_assert_eq(tp_pool_command(&env.pool, on_nested, &n, 3, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &n.done, 5000));
    cr_assert(n.ok);
}

typedef struct {
    size_t len;
    bool done;
} big_t;

static void on_big(void *data, int status, const tp_reply_t *r) {
    big_t *b = data;
    b->done = true;
    b->len = status == 0 && r->type == TP_REPLY_STRING ? r->len : 0;
}

/* A 4 MiB value crosses many reads and TLS-sized chunks and still arrives whole. */
Test(conn, large_bulk_reply, .init = start_plain) {
    size_t n = 4u << 20;
    char *value = malloc(n);
    memset(value, 'x', n);
    const char *argv[] = {"SET", "big", value};
    size_t lens[] = {3, 3, n};
    tp_test_result_t set = {0};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &set, 3, argv, lens), 0);
    free(value);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &set.done, 5000));
    big_t b = {0};
    const char *get[] = {"GET", "big"};
    cr_assert_eq(tp_pool_command(&env.pool, on_big, &b, 2, get, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &b.done, 5000));
    cr_assert_eq(b.len, n);
}

typedef struct {
    long long next; /* the INCR result the next reply must carry */
    long long bad;
} order_t;

static void on_incr(void *data, int status, const tp_reply_t *r) {
    order_t *o = data;
    if (status != 0 || r->integer != o->next)
        o->bad++;
    o->next++;
}

static bool all_answered(void *o) {
    return ((order_t *)o)->next > 100000;
}

/* 100,000 commands queued in one go come back complete and strictly in order,
 * in far fewer socket writes than commands. */
Test(conn, deep_pipeline_in_order, .init = start_plain) {
    order_t o = {.next = 1};
    const char *argv[] = {"INCR", "counter"};
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(tp_pool_command(&env.pool, on_incr, &o, 2, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, all_answered, &o, 30000));
    cr_assert_eq(o.bad, 0);
    cr_assert_lt(tp_pool_stats(&env.pool)->writes, 1000, "writes: %llu",
                 (unsigned long long)tp_pool_stats(&env.pool)->writes);
    char out[32];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "counter", NULL);
    cr_assert_str_eq(out, "100000");
}

/* A command queued outside any callback is written in the very next loop
 * iteration: nothing waits for a timer or for more commands. */
Test(conn, lone_command_flushed_in_next_iteration, .init = start_plain) {
    uint64_t writes = tp_pool_stats(&env.pool)->writes;
    tp_test_result_t r = {0};
    const char *argv[] = {"PING"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &r, 1, argv, NULL), 0);
    cr_assert_eq(tp_pool_stats(&env.pool)->writes, writes);
    uv_run(&env.loop, UV_RUN_NOWAIT);
    cr_assert_eq(tp_pool_stats(&env.pool)->writes, writes + 1);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
}

/* The database is selected during the handshake. */
Test(conn, select_database) {
    start(NULL);
    env.cfg.redis.database = 3;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    tp_test_result_t r = tp_test_command(&env, "CLIENT", "INFO", NULL);
    cr_assert(strstr(r.str, " db=3 ") != NULL, "%s", r.str);
}

/* A database that does not exist is refused with a message naming the setting. */
Test(conn, select_invalid_database) {
    start(NULL);
    env.cfg.redis.database = 999;
    cr_assert(tp_test_env_open_fails(&env));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "REDIS_DATABASE") != NULL, "%s",
              tp_pool_last_error(&env.pool));
}

/* REDIS_HOST may be a name, resolved off the loop thread. (Trying each of
 * several addresses in turn is not exercised: this machine's "localhost" has
 * only one.) */
Test(conn, host_name_resolved) {
    start(NULL);
    tp_test_set_str(&env.cfg.redis.host, "localhost");
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* A host name that does not resolve is reported as such, naming the setting. */
Test(conn, unresolvable_host_refused) {
    start(NULL);
    tp_test_set_str(&env.cfg.redis.host, "no-such-host.invalid");
    cr_assert(tp_test_env_open_fails(&env));
    cr_assert(strstr(tp_pool_last_error(&env.pool),
                     "cannot resolve REDIS_HOST no-such-host.invalid") != NULL,
              "%s", tp_pool_last_error(&env.pool));
}

/* ACL user + password. */
Test(conn, acl_user_login) {
    tp_test_redis_opts_t o = {.acl_user = "trader", .acl_pass = "s3cret pass"};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    tp_test_result_t r = tp_test_command(&env, "ACL", "WHOAMI", NULL);
    cr_assert_str_eq(r.str, "trader");
}

/* Legacy AUTH with only a password. */
Test(conn, password_only_login) {
    tp_test_redis_opts_t o = {.requirepass = "hunter2"};
    start(&o);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    cr_assert_eq(tp_test_command(&env, "PING", NULL).status, 0);
}

/* A wrong password is refused with Redis's reason and the settings to check,
 * and the password itself never appears in the message. */
Test(conn, wrong_password_refused) {
    tp_test_redis_opts_t o = {.acl_user = "trader", .acl_pass = "right"};
    start(&o);
    tp_test_set_str(&env.cfg.redis.password, "wrong-secret");
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(tp_pool_last_error(&env.pool), "WRONGPASS") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "REDIS_PASSWORD") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "wrong-secret") == NULL);
}

/* No password for a server that needs one: NOAUTH, with a hint. */
Test(conn, missing_password_refused) {
    tp_test_redis_opts_t o = {.requirepass = "hunter2"};
    start(&o);
    tp_test_set_str(&env.cfg.redis.password, NULL);
    cr_assert(tp_test_env_open_fails(&env), "the pool connected or did not go down");
    cr_assert(strstr(tp_pool_last_error(&env.pool), "NOAUTH") != NULL, "%s",
              tp_pool_last_error(&env.pool));
}

/* Nothing listening: connection refused, then down; queued commands fail with
 * TP_EDOWN and new ones are refused at once. */
Test(conn, unreachable_server_goes_down) {
    start(NULL);
    tp_test_redis_stop(&srv);
    env.cfg.redis.max_retries = 2;
    uv_loop_init(&env.loop);
    cr_assert_eq(tp_pool_init(&env.pool, &env.loop, &env.cfg.redis, &env.opts), 0);
    env.opened = true;
    tp_test_result_t queued = {0};
    const char *argv[] = {"PING"};
    cr_assert_eq(tp_pool_command(&env.pool, tp_test_on_reply, &queued, 1, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &queued.done, 5000));
    cr_assert_eq(queued.status, TP_EDOWN);
    cr_assert(tp_pool_is_down(&env.pool));
    cr_assert(strstr(tp_pool_last_error(&env.pool), "connection refused") != NULL, "%s",
              tp_pool_last_error(&env.pool));
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 1, argv, NULL), TP_EDOWN);
}

typedef struct {
    int ok;
    int queued;
    int writable;
} cap_t;

static void on_cap_reply(void *data, int status, const tp_reply_t *r) {
    (void)r;
    ((cap_t *)data)->ok += status == 0;
}

static void on_writable(tp_pool_t *pool) {
    ((cap_t *)pool->data)->writable++;
}

static bool cap_drained(void *c) {
    return ((cap_t *)c)->writable > 0;
}

static bool cap_all_ok(void *c) {
    return ((cap_t *)c)->ok == ((cap_t *)c)->queued;
}

/* Queued bytes never exceed REDIS_MAX_QUEUED_BYTES: the command that would
 * pass it is refused with TP_EBACKPRESSURE and changes nothing; on_writable
 * tells the caller when to resume; a command larger than the cap is invalid. */
Test(conn, memory_cap_honoured) {
    start(NULL);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_queued_bytes = 64 * 1024;
    cap_t cap = {0};
    env.pool.data = &cap;
    env.opts.on_writable = on_writable;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);

    char value[1024];
    memset(value, 'v', sizeof(value));
    const char *argv[] = {"SET", "k", value};
    size_t lens[] = {3, 1, sizeof(value)};
    int rc;
    while ((rc = tp_pool_command(&env.pool, on_cap_reply, &cap, 3, argv, lens)) == 0)
        cap.queued++;
    cr_assert_eq(rc, TP_EBACKPRESSURE);
    cr_assert_leq(tp_conn_queued_bytes(tp_pool_conn(&env.pool, 0)), 64 * 1024);
    cr_assert_eq(tp_conn_pending(tp_pool_conn(&env.pool, 0)), (size_t)cap.queued);
    cr_assert_gt(cap.queued, 50);

    cr_assert(tp_test_run_until(&env.loop, cap_drained, &cap, 5000));
    cr_assert_eq(tp_pool_command(&env.pool, on_cap_reply, &cap, 3, argv, lens), 0);
    cap.queued++;
    cr_assert(tp_test_run_until(&env.loop, cap_all_ok, &cap, 5000));

    char *huge = calloc(1, 128 * 1024);
    const char *big[] = {"SET", "k", huge};
    size_t big_lens[] = {3, 1, 128 * 1024};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, big, big_lens), TP_EINVAL);
    free(huge);
}

/* A connection full of single commands still takes units, however many: a backlog of price
 * writes must not hold order state back (at a 1 MiB cap the order feed paused every few
 * milliseconds at 100k ticks/s + 2k order events/s, bench/run.sh's mixed row). Only a unit
 * over the cap by itself is refused. */
Test(conn, units_are_not_refused_for_the_backlog) {
    start(NULL);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_queued_bytes = 64 * 1024;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    tp_conn_t *c = tp_pool_conn(&env.pool, 0);

    char value[1024];
    memset(value, 'v', sizeof(value));
    const char *argv[] = {"SET", "k", value};
    size_t lens[] = {3, 1, sizeof(value)};
    while (tp_pool_command(&env.pool, NULL, NULL, 3, argv, lens) == 0)
        ;
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, argv, lens), TP_EBACKPRESSURE);

    tp_buf_t unit = {0};
    cr_assert_eq(tp_resp_array(&unit, 3), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tp_resp_arg(&unit, argv[i], lens[i]), 0);
    for (int i = 0; i < 256; i++) /* 4x the cap */
        cr_assert_eq(
            tp_conn_send_unit(c, tp_buf_ptr(&unit), tp_buf_size(&unit), 1, NULL, NULL, NULL), 0,
            "unit %d", i);
    cr_assert_gt(tp_conn_queued_bytes(c), 4 * 64 * 1024);
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, argv, lens), TP_EBACKPRESSURE,
                 "single commands are still refused");

    char huge[64 * 1024 + 1];
    memset(huge, 'x', sizeof(huge));
    cr_assert_eq(tp_conn_send_unit(c, huge, sizeof(huge), 1, NULL, NULL, NULL), TP_EINVAL);
    tp_buf_free(&unit);
}

/* Regression: a command refused as too large (TP_EINVAL) while the connection
 * was backpressured cleared the backpressure, so on_writable never came. */
Test(conn, writable_survives_oversize_refusal) {
    start(NULL);
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_queued_bytes = 4096;
    cap_t cap = {0};
    env.pool.data = &cap;
    env.opts.on_writable = on_writable;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0);
    tp_test_redis_pause(&srv);

    char value[1000];
    memset(value, 'v', sizeof(value));
    const char *argv[] = {"SET", "k", value};
    size_t lens[] = {3, 1, sizeof(value)};
    int rc;
    while ((rc = tp_pool_command(&env.pool, on_cap_reply, &cap, 3, argv, lens)) == 0)
        cap.queued++;
    cr_assert_eq(rc, TP_EBACKPRESSURE);
    char huge[5000] = {0};
    const char *big[] = {"SET", "k", huge};
    size_t big_lens[] = {3, 1, sizeof(huge)};
    cr_assert_eq(tp_pool_command(&env.pool, NULL, NULL, 3, big, big_lens), TP_EINVAL);

    tp_test_redis_resume(&srv);
    cr_assert(tp_test_run_until(&env.loop, cap_all_ok, &cap, 5000));
    cr_assert_eq(cap.writable, 1);
}

/* ---- replies no real Redis sends: a fake server -------------------------------------------- */

/* A fake Redis on a thread: answers the handshake (PING, and CLIENT INFO when the connection
 * asks), then answers the first other command with `reply` and hangs up. */
typedef struct {
    int fd;
    int port;
    const char *reply;
    size_t reply_len;
    pthread_t thread;
} fake_redis_t;

/* The argument count of the RESP command at the front of buf[0, n) and its first argument,
 * or 0 while it is incomplete; *used is set to its length. */
static size_t fake_parse(const char *buf, size_t n, size_t *used, const char **name,
                         size_t *name_len) {
    const char *p = buf, *end = buf + n;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (n == 0 || *p != '*' || nl == NULL)
        return 0;
    size_t argc = strtoul(p + 1, NULL, 10);
    p = nl + 1;
    for (size_t i = 0; i < argc; i++) {
        nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (nl == NULL)
            return 0;
        size_t len = strtoul(p + 1, NULL, 10);
        p = nl + 1;
        if ((size_t)(end - p) < len + 2)
            return 0;
        if (i == 0) {
            *name = p;
            *name_len = len;
        }
        p += len + 2;
    }
    *used = (size_t)(p - buf);
    return argc;
}

static void *fake_redis_run(void *arg) {
    fake_redis_t *f = arg;
    int c = accept(f->fd, NULL, NULL);
    char buf[4096];
    size_t n = 0;
    bool done = false;
    while (c >= 0 && !done) {
        ssize_t r = read(c, buf + n, sizeof(buf) - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        size_t used;
        const char *name;
        size_t name_len;
        while (!done && fake_parse(buf, n, &used, &name, &name_len) > 0) {
            char out[128];
            const char *answer = out;
            size_t len;
            if (name_len == 4 && memcmp(name, "PING", 4) == 0) {
                len = (size_t)snprintf(out, sizeof(out), "+PONG\r\n");
            } else if (name_len == 6 && memcmp(name, "CLIENT", 6) == 0) {
                const char *info = "id=7 addr=127.0.0.1:1 laddr=127.0.0.1:2 name= db=0\n";
                len = (size_t)snprintf(out, sizeof(out), "$%zu\r\n%s\r\n", strlen(info), info);
            } else {
                answer = f->reply;
                len = f->reply_len;
                done = true;
            }
            if (write(c, answer, len) != (ssize_t)len) /* no cr_assert off the test's thread */
                done = true;
            memmove(buf, buf + used, n - used);
            n -= used;
        }
    }
    if (c >= 0)
        close(c);
    return NULL;
}

static void fake_redis_start(fake_redis_t *f, const char *reply, size_t len) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    f->reply = reply;
    f->reply_len = len;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(f->fd >= 0);
    cr_assert_eq(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(f->fd, 1), 0);
    cr_assert_eq(getsockname(f->fd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_redis_run, f), 0);
}

static void fake_redis_stop(fake_redis_t *f) {
    pthread_join(f->thread, NULL);
    close(f->fd);
}

/* The address space the process has mapped now, from /proc/self/statm. */
static size_t mapped_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    cr_assert(f != NULL && fscanf(f, "%lu", &pages) == 1);
    fclose(f);
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct {
    bool done;
    int status;
    char errstr[sizeof(((tp_pool_t *)0)->errstr)];
} failed_t;

static void on_failed(void *data, int status, const tp_reply_t *r) {
    (void)r;
    failed_t *f = data;
    f->done = true;
    f->status = status;
    memcpy(f->errstr, tp_pool_last_error(&env.pool), sizeof(f->errstr));
}

/* Regression (found by tests/fuzz/fuzz_replies): an array header is not an allocation size.
 * "*2147483647" made the reply parser allocate the 16 GiB element table at once. With the
 * address space capped 1 GiB above what is mapped, a reply announcing 2^31 - 1 elements, then
 * sending three and hanging up, fails the connection as closed by the server (not with "Out
 * of memory", nor an allocator abort under ASan). */
Test(conn, array_count_is_not_an_allocation_size) {
    static const char reply[] = "*2147483647\r\n:1\r\n:2\r\n$3\r\nabc\r\n";
    fake_redis_t fake;
    fake_redis_start(&fake, reply, sizeof(reply) - 1);
    tp_config_init(&env.cfg);
    tp_test_set_str(&env.cfg.redis.host, "127.0.0.1");
    env.cfg.redis.port = fake.port;
    env.cfg.redis.pool_size = 1;
    env.cfg.redis.max_retries = 1; /* the first failure completes the command: TP_EDOWN */
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));

    struct rlimit cap = {.rlim_cur = mapped_bytes() + (1u << 30), .rlim_max = RLIM_INFINITY};
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    cap.rlim_max = old.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_AS, &cap), 0);
    failed_t f = {0};
    const char *argv[] = {"LRANGE", "list", "0", "-1"};
    cr_assert_eq(tp_pool_command(&env.pool, on_failed, &f, 4, argv, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &f.done, 5000));
    cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
    fake_redis_stop(&fake);
    cr_assert_eq(f.status, TP_EDOWN);
    cr_assert(strstr(f.errstr, "closed by the server") != NULL, "%s", f.errstr);
}

static void on_long_array(void *data, int status, const tp_reply_t *r) {
    nested_t *n = data;
    n->done = true;
    n->ok = status == 0 && r->type == TP_REPLY_ARRAY && r->elements == 100000;
    for (size_t i = 0; n->ok && i < r->elements; i++)
        n->ok = r->element[i]->type == TP_REPLY_INTEGER && r->element[i]->integer == (long long)i;
}

/* 100,000 elements, arriving over many reads, fill an array whose element table grows as they
 * come; then a nested one of two elements per item. */
Test(conn, long_array_reply, .init = start_plain) {
    const char *flat[] = {"EVAL", "local t = {} for i = 1, 100000 do t[i] = i - 1 end return t",
                          "0"};
    nested_t n = {0};
    cr_assert_eq(tp_pool_command(&env.pool, on_long_array, &n, 3, flat, NULL), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &n.done, 10000));
    cr_assert(n.ok);
    tp_test_result_t r = tp_test_command(
        &env, "EVAL", "local t = {} for i = 1, 3000 do t[i] = {i, 'x'} end return t", "0", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.type, TP_REPLY_ARRAY);
    cr_assert_eq(r.elements, 3000);
}

typedef struct {
    bool done;
    int status;
    bool reply;
} mget_t;

static void on_mget(void *data, int status, const tp_reply_t *r) {
    mget_t *m = data;
    m->done = true;
    m->status = status;
    m->reply = r != NULL;
}

/* Regression (found by tests/fuzz/fuzz_replies): an MGET answer that is not one string or nil
 * per key reached the caller as status 0 with values of other types, a status without its
 * string, or (a short array) values of type 0. It is a protocol error now. */
Test(conn, mget_of_the_wrong_shape_is_a_protocol_error) {
    static const char reply[] = "*3\r\n:1\r\n+OK\r\n$-1\r\n";
    fake_redis_t fake;
    fake_redis_start(&fake, reply, sizeof(reply) - 1);
    tp_config_init(&env.cfg);
    tp_test_set_str(&env.cfg.redis.host, "127.0.0.1");
    env.cfg.redis.port = fake.port;
    env.cfg.redis.pool_size = 1;
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    mget_t m = {0};
    const char *keys[] = {"a", "b", "c"};
    cr_assert_eq(tp_mget(&env.pool, 3, keys, on_mget, &m), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &m.done, 5000));
    fake_redis_stop(&fake);
    cr_assert_eq(m.status, TP_EPROTOCOL);
    cr_assert(!m.reply);
}

/* tp_conn_send_unit_wait on a server without replicas: the unit is applied, but WAIT 1 sees no
 * replica, so the completion says TP_EREPLICAS (with EXEC's reply) and counts a short wait. */
Test(conn, unit_wait_without_replicas_is_short, .init = start_plain) {
    const char resp[] = "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$2\r\nuw\r\n$1\r\n1\r\n"
                        "*1\r\n$4\r\nEXEC\r\n";
    tp_test_result_t r = {0};
    tp_conn_t *c = tp_pool_conn_for_key(&env.pool, "uw", 2);
    cr_assert_eq(
        tp_conn_send_unit_wait(c, resp, sizeof(resp) - 1, 3, 1, 50, NULL, tp_test_on_reply, &r), 0);
    cr_assert(tp_test_run_until(&env.loop, tp_test_flag_set, &r.done, 5000));
    cr_expect_eq(r.status, TP_EREPLICAS, "%s", tp_err_name(r.status));
    cr_expect_eq(r.type, TP_REPLY_ARRAY, "the unit's own reply: EXEC's");
    cr_expect_eq(r.elements, 1);
    cr_expect_eq(tp_pool_stats(&env.pool)->waits_short, 1);
    r = (tp_test_result_t){0};
    cr_assert_eq(
        tp_conn_send_unit_wait(c, resp, sizeof(resp) - 1, 3, 0, 50, NULL, tp_test_on_reply, &r),
        TP_EINVAL, "0 replicas: use tp_conn_send_unit");
    char out[16];
    tp_test_redis_cli(&srv, out, sizeof(out), "GET", "uw", NULL);
    cr_expect_str_eq(out, "1");
}

/* A Redis Cluster seed that answers CLUSTER SHARDS with garbage: the map stays empty, the
 * failure is counted and named (the field that is wrong), nothing crashes, and commands wait
 * for a map (then fail as down). */
Test(conn, garbage_cluster_shards_are_refused) {
    static const char *const garbage[] = {
        ":5\r\n",
        "*1\r\n*2\r\n$5\r\nslots\r\n*0\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:99999\r\n$5\r\nnodes\r\n*0\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n*2\r\n$2\r\nid\r\n"
        "$3\r\nxyz\r\n",
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        fake_redis_t fake;
        fake_redis_start(&fake, garbage[i], strlen(garbage[i]));
        tp_test_redis_t none = {.port = fake.port};
        tp_test_env_config(&env, &none);
        char seed[32];
        snprintf(seed, sizeof(seed), "127.0.0.1:%d", fake.port);
        tp_test_set_str(&env.cfg.redis.cluster_nodes, seed);
        env.cfg.redis.connect_timeout_ms = 300;
        cr_assert(tp_test_env_open_fails(&env), "case %zu: the pool became ready", i);
        const tp_pool_stats_t *st = tp_pool_stats(&env.pool);
        cr_expect_geq(st->map_failures, 1, "case %zu", i);
        cr_expect_eq(st->map_refreshes, 0, "case %zu", i);
        const char *err = tp_pool_last_error(&env.pool);
        cr_expect(strstr(err, seed) != NULL, "case %zu: %s", i, err);
        tp_test_result_t r = tp_test_command(&env, "GET", "k", NULL);
        cr_expect_eq(r.status, TP_EDOWN, "case %zu: %s", i, tp_err_name(r.status));
        tp_test_env_close(&env);
        fake_redis_stop(&fake);
        fprintf(stderr, "case %zu: %s\n", i, err);
    }
}

/* ---- a fake Cluster node that redirects to a node nobody can reach ------------------------- */

/* Serves every connection (the slot-map reader's and the pool's): no CLUSTER SHARDS (an old
 * Redis: the router falls back to CLUSTER SLOTS, which maps every slot to itself), and the
 * first GET is answered "MOVED <slot> 127.0.0.1:1", the next ones with "v". */
typedef struct {
    int fd, port;
    unsigned slot;
    volatile bool stop;
    int gets;
    pthread_t thread;
} fake_node_t;

static size_t fake_node_answer(fake_node_t *f, const char *name, size_t n, const char *buf,
                               char *out, size_t cap) {
    if (n == 4 && memcmp(name, "PING", 4) == 0)
        return (size_t)snprintf(out, cap, "+PONG\r\n");
    if (n == 6 && memcmp(name, "CLIENT", 6) == 0) {
        const char *info = "id=7 addr=127.0.0.1:1 laddr=127.0.0.1:2 name= db=0\n";
        return (size_t)snprintf(out, cap, "$%zu\r\n%s\r\n", strlen(info), info);
    }
    if (n == 7 && memcmp(name, "CLUSTER", 7) == 0) {
        if (strstr(buf, "SHARDS"))
            return (size_t)snprintf(out, cap, "-ERR unknown subcommand 'SHARDS'\r\n");
        return (size_t)snprintf(
            out, cap,
            "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:%d\r\n$40\r\n"
            "%040d\r\n",
            f->port, 7);
    }
    if (n == 3 && memcmp(name, "GET", 3) == 0 && f->gets++ == 0)
        return (size_t)snprintf(out, cap, "-MOVED %u 127.0.0.1:1\r\n", f->slot);
    if (n == 3 && memcmp(name, "GET", 3) == 0)
        return (size_t)snprintf(out, cap, "$1\r\nv\r\n");
    return (size_t)snprintf(out, cap, "+OK\r\n");
}

static void *fake_node_run(void *arg) {
    fake_node_t *f = arg;
    struct pollfd p[17] = {{.fd = f->fd, .events = POLLIN}};
    char bufs[16][2048];
    size_t lens[16] = {0};
    int nfds = 1;
    while (!f->stop) {
        if (poll(p, (nfds_t)nfds, 50) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && nfds < 17) {
            p[nfds] = (struct pollfd){.fd = accept(f->fd, NULL, NULL), .events = POLLIN};
            lens[nfds - 1] = 0;
            nfds += p[nfds].fd >= 0;
        }
        for (int i = 1; i < nfds; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP)) || p[i].fd < 0)
                continue;
            char *buf = bufs[i - 1];
            ssize_t r = read(p[i].fd, buf + lens[i - 1], sizeof(bufs[0]) - 1 - lens[i - 1]);
            if (r <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            lens[i - 1] += (size_t)r;
            buf[lens[i - 1]] = '\0';
            size_t used;
            const char *name;
            size_t name_len;
            while (fake_parse(buf, lens[i - 1], &used, &name, &name_len) > 0) {
                char out[512];
                size_t len = fake_node_answer(f, name, name_len, buf, out, sizeof(out));
                if (write(p[i].fd, out, len) != (ssize_t)len)
                    break;
                memmove(buf, buf + used, lens[i - 1] - used + 1);
                lens[i - 1] -= used;
            }
        }
    }
    for (int i = 1; i < nfds; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    return NULL;
}

/* A MOVED to a node that refuses connections: the command waits, the map is read again, the
 * slot is the old node's after all, and the command is served there. */
Test(conn, moved_to_an_unreachable_node_is_served_after_the_next_map) {
    static fake_node_t f;
    memset(&f, 0, sizeof(f));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    f.fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(f.fd >= 0 && bind(f.fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              listen(f.fd, 16) == 0 && getsockname(f.fd, (struct sockaddr *)&a, &alen) == 0);
    f.port = ntohs(a.sin_port);
    f.slot = tp_key_slot("k", 1);
    cr_assert_eq(pthread_create(&f.thread, NULL, fake_node_run, &f), 0);

    tp_test_redis_t none = {.port = f.port};
    tp_test_env_config(&env, &none);
    char seed[32];
    snprintf(seed, sizeof(seed), "127.0.0.1:%d", f.port);
    tp_test_set_str(&env.cfg.redis.cluster_nodes, seed);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
    tp_test_result_t r = tp_test_command(&env, "GET", "k", NULL);
    cr_expect(r.done && r.status == 0 && strcmp(r.str, "v") == 0, "%s %s", tp_err_name(r.status),
              r.str);
    const tp_pool_stats_t *st = tp_pool_stats(&env.pool);
    cr_expect_eq(st->moved, 1);
    cr_expect_geq(st->map_refreshes, 2, "the map was read again");
    cr_expect(tp_pool_is_ready(&env.pool));
    tp_test_env_close(&env);
    f.stop = true;
    pthread_join(f.thread, NULL);
    close(f.fd);
}
