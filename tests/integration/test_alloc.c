/* The pool's steady-state command path makes no heap allocation, over TLS and
 * over plain TCP: after a warm-up that lets buffers, FIFOs and OpenSSL reach
 * their working size, N more price writes (a 9-field HSET, as the price
 * writer issues them) must cause fewer than N/100 allocations in the whole
 * process. Over TLS this holds only because tls.c puts a cache in front of
 * OpenSSL's allocator; without it OpenSSL mallocs ~3.5 times per record.
 *
 * Counting. Sanitizer builds (CI) replace malloc, so there the sanitizer's
 * malloc hook counts; other builds replace malloc, calloc and realloc with
 * counting wrappers around glibc's own entry points (as bench/malloc_count.c
 * does). Both variants sit in this file, chosen at compile time, because a
 * test binary is one file; counting happens only inside the measurement
 * window, which opens and closes in reply callbacks. */
#include "pool_env.h"
#include "tp/commands.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- counting allocations ----------------------------------------------------------------- */

enum { FIRST_SIZES = 8 };

static atomic_bool counting;
static atomic_ulong allocations;
static size_t first_sizes[FIRST_SIZES]; /* sizes of the first allocations in the window */

static void count_allocation(size_t n) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed))
        return;
    unsigned long i = atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    if (i < FIRST_SIZES)
        first_sizes[i] = n;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALLOC_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define ALLOC_HOOKS 1
#endif
#endif

#ifdef ALLOC_HOOKS
/* GCC ships no <sanitizer/allocator_interface.h>, but its libasan exports the
 * function; this is the declaration of compiler-rt's header. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void on_malloc(const volatile void *p, size_t n) {
    (void)p;
    count_allocation(n);
}

static void on_free(const volatile void *p) {
    (void)p;
}

static void install_counter(void) {
    /* The runtime wants both hooks; the install lasts for the process, and
     * Criterion runs every test in a process of its own. */
    cr_assert_neq(__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free), 0);
}
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

/* Every allocation of the process comes here (libuv's, OpenSSL's, Criterion's). */
void *malloc(size_t n) {
    count_allocation(n);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    count_allocation(n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    count_allocation(n);
    return __libc_realloc(p, n);
}

static void install_counter(void) {}
#endif

/* ---- installing tickplane's OpenSSL allocator -------------------------------------------- */

/* Criterion initialises libgit2 in every test process before any test code
 * runs (criterion_initialize -> libssh2_init -> OPENSSL_init_crypto), and
 * CRYPTO_set_mem_functions() refuses once OpenSSL has allocated, so a pool
 * opened by a test could no longer install tls.c's allocator: it would log
 * "OpenSSL was in use before the Redis pool" and allocate per TLS record. In
 * the service the pool is the first user of OpenSSL; a constructor restores
 * that order here. tp_pool_init creates the TLS context first of all, which is
 * where tls.c installs its allocator, and a CA file that does not exist makes
 * it fail right there, before any connection or handle (on failure nothing
 * needs closing). Without the allocator the TLS cases below fail. */
__attribute__((constructor)) static void pool_uses_openssl_first(void) {
    static char missing_ca[] = "/nonexistent/tickplane-test-ca.crt";
    tp_redis_config_t cfg = {.pool_size = 1, .tls = true, .tls_ca_path = missing_ca};
    tp_pool_t pool = {0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    (void)tp_pool_init(&pool, &loop, &cfg, NULL);
    uv_loop_close(&loop);
}

/* ---- the load: price writes, a batch at a time --------------------------------------------- */

enum { SYMBOLS = 1000, FIELDS = 9, MEASURED = 20000 };

static const char *const fields[FIELDS] = {"bid",     "ask", "bid_sz",  "ask_sz", "last",
                                           "last_sz", "seq", "exch_ts", "recv_ts"};

typedef struct {
    tp_pool_t *pool;
    /* Up to depth commands outstanding, issued batch at a time: a batch goes
     * out once depth - batch or fewer are left, from the reply that got there. */
    int depth, batch;
    int warmup;
    int issued, answered, outstanding;
    int failed, first_error; /* first_error: a refusal or a completion's status */
    bool done;
    uint64_t writes0, writes; /* pool socket writes, during the window */
} load_t;

static char keys[SYMBOLS][16];

static void make_keys(void) {
    for (int i = 0; i < SYMBOLS; i++)
        snprintf(keys[i], sizeof(keys[i]), "px:SYM%04d", i);
}

static void issue(load_t *l);

static void fail(load_t *l, int status) {
    if (l->failed++ == 0)
        l->first_error = status;
    l->done = true; /* stop; the test reports it */
}

static void open_window(load_t *l) {
    l->writes0 = tp_pool_stats(l->pool)->writes;
    atomic_store(&allocations, 0);
    atomic_store(&counting, true);
}

static void close_window(load_t *l) {
    atomic_store(&counting, false);
    l->writes = tp_pool_stats(l->pool)->writes - l->writes0;
}

static void on_written(void *data, int status, const tp_reply_t *reply) {
    load_t *l = data;
    (void)reply;
    l->outstanding--;
    l->answered++;
    if (status != 0) {
        fail(l, status);
        return;
    }
    if (l->answered == l->warmup + MEASURED) {
        close_window(l);
        l->done = true;
        return;
    }
    /* The warm-up drains before the window opens, so the window holds exactly
     * the MEASURED commands issued in it. */
    if (l->answered == l->warmup)
        open_window(l);
    issue(l);
}

static void issue(load_t *l) {
    int end = l->answered < l->warmup ? l->warmup : l->warmup + MEASURED;
    if (l->depth - l->outstanding < l->batch)
        return;
    for (int i = 0; i < l->batch && l->issued < end; i++) {
        /* Quote-like text that changes with every write; nothing here allocates. */
        char text[FIELDS][24];
        const char *values[FIELDS];
        int seq = l->issued;
        snprintf(text[0], sizeof(text[0]), "101.%02d", seq % 100);
        snprintf(text[1], sizeof(text[1]), "101.%02d", seq % 100 + 2);
        snprintf(text[2], sizeof(text[2]), "%d", 100 + seq % 900);
        snprintf(text[3], sizeof(text[3]), "%d", 200 + seq % 800);
        snprintf(text[4], sizeof(text[4]), "101.%02d", seq % 100 + 1);
        snprintf(text[5], sizeof(text[5]), "%d", 1 + seq % 500);
        snprintf(text[6], sizeof(text[6]), "%d", seq);
        snprintf(text[7], sizeof(text[7]), "%lld", 1700000000000000000LL + seq * 1000LL);
        snprintf(text[8], sizeof(text[8]), "%lld", 1700000000000050000LL + seq * 1000LL);
        for (int f = 0; f < FIELDS; f++)
            values[f] = text[f];
        int rc = tp_hset(l->pool, keys[seq % SYMBOLS], FIELDS, fields, values, NULL, on_written, l);
        if (rc != 0) {
            fail(l, rc);
            return;
        }
        l->issued++;
        l->outstanding++;
    }
}

static bool load_done(void *l) {
    return ((load_t *)l)->done;
}

/* ---- the cases ---------------------------------------------------------------------------- */

static tp_test_redis_t srv;
static tp_test_env_t env;

static void start(bool tls) {
    install_counter();
    make_keys();
    tp_test_redis_opts_t o = {.tls = tls};
    cr_assert_eq(tp_test_env_start(&env, &srv, &o), 0);
    cr_assert_eq(tp_test_env_open(&env, 5000), 0, "%s", tp_pool_last_error(&env.pool));
}

static void setup_tls(void) {
    start(true);
}

static void setup_tcp(void) {
    start(false);
}

static void teardown(void) {
    tp_test_env_stop(&env);
}

TestSuite(alloc_tls, .init = setup_tls, .fini = teardown, .timeout = 60);
TestSuite(alloc_tcp, .init = setup_tcp, .fini = teardown, .timeout = 60);

/* Runs warmup + MEASURED writes and checks the window's allocations. */
static void run(const char *name, int depth, int batch, int warmup) {
    load_t l = {.pool = &env.pool, .depth = depth, .batch = batch, .warmup = warmup};
    issue(&l);
    cr_assert(tp_test_run_until(&env.loop, load_done, &l, 30000), "%s: %d of %d answered", name,
              l.answered, warmup + MEASURED);
    cr_assert_eq(l.failed, 0, "%s: %d failed, the first with %s", name, l.failed,
                 tp_strerror(l.first_error));
    cr_assert_eq(tp_pool_stats(&env.pool)->reconnects, 0);

    unsigned long n = atomic_load(&allocations);
    char sizes[FIRST_SIZES * 12] = "";
    for (unsigned long i = 0, len = 0; i < n && i < FIRST_SIZES; i++)
        len += (size_t)snprintf(sizes + len, sizeof(sizes) - len, " %zu", first_sizes[i]);
    fprintf(stderr,
            "%s %s: %lu allocations for %d commands (%.4f per command) in %llu writes "
            "(%.4f per write)%s%s\n",
            env.srv->tls ? "TLS" : "TCP", name, n, MEASURED, (double)n / MEASURED,
            (unsigned long long)l.writes, l.writes ? (double)n / (double)l.writes : 0.0,
            n ? "; first sizes:" : "", sizes);
    cr_assert_lt(n, MEASURED / 100, "%s: %lu allocations for %d commands (%.3f per command)", name,
                 n, MEASURED, (double)n / MEASURED);
}

/* 200 in flight, 100 issued at a time: many commands per write, per record. */
Test(alloc_tls, pipelined) {
    run("pipelined", 200, 100, 5000);
}

/* One command in flight, each issued from the previous reply: one TLS record
 * written and one read per command, where OpenSSL's allocations would show. */
Test(alloc_tls, one_outstanding) {
    run("one outstanding", 1, 1, 2000);
}

Test(alloc_tcp, pipelined) {
    run("pipelined", 200, 100, 5000);
}

Test(alloc_tcp, one_outstanding) {
    run("one outstanding", 1, 1, 2000);
}
