/* End to end: the tickplane binary against a real redis-server over TLS.
 *
 * Each test starts its own TLS redis-server (tests/support/redis_server.h) and its
 * own tickplane process (TP_TICKPLANE_BIN, configured by environment variables,
 * feed port 0 read back from its JSON log), then runs
 * tests/support/trading_scenario.py with Debian's /usr/bin/python3: it encodes
 * frames with Python's flatbuffers runtime, sends them as an adapter would, waits
 * for the feed acks, reads Redis back with redis-py and compares it with the
 * reference models of tests/support/trading_oracle.py. Python asks this side,
 * over its stdin/stdout, to SIGTERM tickplane ("@@ term" -> "exited <status>") or
 * start a new one on the same Redis ("@@ start" -> "port <feed port> metrics <port>").
 *
 * Independently of Python, this side checks every tickplane exit status (0 after
 * SIGTERM), and a handful of facts the scenario wrote to an expectations file
 * are read back here through redis-cli.
 *
 * Logs: each tickplane writes to <tmpdir>/tickplane-<n>.log; when a test fails
 * the tails are printed and the directory is kept (TP_E2E_KEEP=1 keeps it always). */
#define _GNU_SOURCE

#include "redis_cluster.h"
#include "redis_server.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TP_TICKPLANE_BIN
#error "TP_TICKPLANE_BIN must be defined (tests/CMakeLists.txt)"
#endif
#ifndef TP_TRADING_SCENARIO
#error "TP_TRADING_SCENARIO must be defined (tests/CMakeLists.txt)"
#endif
#ifndef TP_WIRE_PYTHON_DIR
#error "TP_WIRE_PYTHON_DIR must be defined (tests/CMakeLists.txt)"
#endif

#define PYTHON "/usr/bin/python3"
enum {
    START_TIMEOUT_MS = 30000,    /* tickplane: exec -> "feed listening" logged */
    STOP_TIMEOUT_MS = 30000,     /* SIGTERM -> exit (TP_SHUTDOWN_TIMEOUT is 10 s) */
    SCENARIO_TIMEOUT_MS = 170000 /* one Python scenario, all of it */
};

extern char **environ;

typedef struct {
    tp_test_redis_t srv;
    tp_test_cluster_t cl; /* the e2e_cluster suite's, instead of srv */
    bool cluster;
    const char *ack_replicas; /* TP_ACK_REPLICAS */
    char seeds[512];          /* REDIS_CLUSTER_NODES of cl */
    char dir[64];             /* logs and the expectations file */
    const char *event_format; /* TP_EVENT_FORMAT */
    const char *mark_price;   /* TP_MARK_PRICE of the first tickplane run */
    const char *mark_price_2; /* ... of the runs after it (a restart that changes the rule) */
    pid_t tp_pid;             /* the running tickplane, 0 when none */
    int tp_runs;              /* tickplanes started so far */
    int feed_port;            /* of the running tickplane */
    int metrics_port;         /* its TP_METRICS_ADDR port */
    int tp_exit[8];           /* exit statuses, in order (128 + signal when killed) */
    int tp_exits;
    pid_t py_pid;
    bool failed;
} e2e_t;

static e2e_t E;

/* The server the scenario and redis-cli talk to: on a cluster, its first master. */
static tp_test_redis_t *redis_node(void) {
    return E.cluster ? &E.cl.nodes[0] : &E.srv;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Prints the last n lines of path to stderr. */
static void print_tail(const char *path, int n) {
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    static char lines[64][1024];
    int count = 0;
    while (fgets(lines[count % 64], sizeof lines[0], f))
        count++;
    fclose(f);
    if (n > 64)
        n = 64;
    int first = count > n ? count - n : 0;
    fprintf(stderr, "---- last %d lines of %s ----\n", count - first, path);
    for (int i = first; i < count; i++)
        fputs(lines[i % 64], stderr);
    fprintf(stderr, "---- end of %s ----\n", path);
}

static void dump_logs(void) {
    for (int i = 1; i <= E.tp_runs; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/tickplane-%d.log", E.dir, i);
        print_tail(path, 25);
    }
    if (E.srv.log[0])
        print_tail(E.srv.log, 10);
}

/* Marks the test failed (logs are printed at teardown) and reports via Criterion. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            E.failed = true;                                                                       \
            cr_expect(0, __VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            E.failed = true;                                                                       \
            cr_assert(0, __VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)

/* waitpid with a deadline; returns the exit status (128 + signal when killed by
 * one), or -1 when the process still runs after timeout_ms. */
static int wait_exit(pid_t pid, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (got < 0 && errno != EINTR)
            return -2;
        if (now_ms() > deadline)
            return -1;
        sleep_ms(10);
    }
}

/* ---- tickplane ------------------------------------------------------------------------------ */

/* The environment of a tickplane: ours without REDIS_* and TP_* (a developer's
 * settings must not leak in), plus the test's settings. */
static char **tickplane_env(char *storage, size_t cap) {
    static char *envp[512];
    size_t n = 0, used = 0;
    for (char **e = environ; *e && n < 400; e++) {
        if (strncmp(*e, "REDIS_", 6) == 0 || strncmp(*e, "TP_", 3) == 0)
            continue;
        envp[n++] = *e;
    }
    char ca[256];
    tp_test_cert("ca.crt", ca, sizeof ca);
    const char *fmt[][2] = {
        {"REDIS_HOST", "127.0.0.1"},
        {"REDIS_PORT", NULL},
        {"REDIS_TLS_ENABLED", "true"},
        {"REDIS_TLS_CA_PATH", ca},
        {"REDIS_TLS_SERVER_NAME", "localhost"},
        {"TP_FEED_TCP", "127.0.0.1:0"},
        {"TP_FEED_UDP", "off"},
        {"TP_EVENT_FORMAT", E.event_format},
        {"TP_KEY_PREFIX", "tp:"},
        {"TP_SHUTDOWN_TIMEOUT", "10s"},
        {"TP_LOG_LEVEL", "info"},
        {"TP_METRICS_ADDR", "127.0.0.1:0"},
        {"TP_LATENCY_LOG_INTERVAL", "200ms"},
        {"TP_MARK_PRICE", E.tp_runs > 1 ? E.mark_price_2 : E.mark_price},
        {"TP_ACK_REPLICAS", E.ack_replicas ? E.ack_replicas : "0"},
    };
    char port[16];
    snprintf(port, sizeof port, "%d", redis_node()->port);
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
        const char *v = fmt[i][1] ? fmt[i][1] : port;
        int k = snprintf(storage + used, cap - used, "%s=%s", fmt[i][0], v);
        cr_assert(k > 0 && (size_t)k < cap - used);
        envp[n++] = storage + used;
        used += (size_t)k + 1;
    }
    if (E.cluster) {
        int k = snprintf(storage + used, cap - used, "REDIS_CLUSTER_NODES=%s", E.seeds);
        cr_assert(k > 0 && (size_t)k < cap - used);
        envp[n++] = storage + used;
    }
    envp[n] = NULL;
    return envp;
}

/* The TCP feed port of a "... listening ..." log line of the tcp source, or 0. */
static int listening_port(const char *line) {
    if (!strstr(line, "listening") || !strstr(line, "\"tcp\""))
        return 0;
    const char *p = strstr(line, "\"port\":");
    return p ? atoi(p + 7) : 0;
}

/* The port of the "metrics listening" log line, or 0. */
static int metrics_port(const char *line) {
    const char *p = strstr(line, "\"port\":");
    return strstr(line, "\"metrics listening\"") && p ? atoi(p + 7) : 0;
}

/* fork + execve of argv with the child's standard input, output and error on in, out and
 * err (-1: inherited). The child dies with this process, so a failed test leaves nothing
 * running. */
static pid_t spawn(char *const argv[], char *const envp[], int in, int out, int err) {
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        const int fds[3] = {in, out, err};
        for (int i = 0; i < 3; i++) {
            if (fds[i] >= 0)
                dup2(fds[i], i);
        }
        execve(argv[0], argv, envp);
        _exit(127);
    }
    return pid;
}

/* Starts tickplane on E.srv and waits until it logged its feed port. */
static void start_tickplane(void) {
    REQUIRE(E.tp_pid == 0, "a tickplane is already running");
    REQUIRE(E.tp_runs < 8, "too many tickplane starts");
    char log[128];
    snprintf(log, sizeof log, "%s/tickplane-%d.log", E.dir, ++E.tp_runs);
    static char storage[4096];
    char **envp = tickplane_env(storage, sizeof storage);
    int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(logfd >= 0 && nullfd >= 0, "open %s: %s", log, strerror(errno));
    char *argv[] = {TP_TICKPLANE_BIN, NULL};
    E.tp_pid = spawn(argv, envp, nullfd, logfd, logfd);
    close(logfd);
    close(nullfd);
    E.feed_port = E.metrics_port = 0;

    long long deadline = now_ms() + START_TIMEOUT_MS;
    while (E.feed_port == 0) {
        FILE *f = fopen(log, "r");
        if (f) {
            char line[4096];
            while (E.feed_port == 0 && fgets(line, sizeof line, f)) {
                if (E.metrics_port == 0)
                    E.metrics_port = metrics_port(line);
                E.feed_port = listening_port(line);
            }
            fclose(f);
        }
        if (E.feed_port)
            break;
        int st = wait_exit(E.tp_pid, 0);
        if (st >= 0) {
            E.tp_pid = 0;
            E.tp_exit[E.tp_exits++] = st;
            REQUIRE(0, "tickplane exited with %d during startup (log %s)", st, log);
        }
        REQUIRE(now_ms() < deadline, "tickplane logged no feed port within %d ms (log %s)",
                START_TIMEOUT_MS, log);
        sleep_ms(20);
    }
}

/* SIGTERM and wait; returns the exit status (-1: had to be killed). */
static int stop_tickplane(void) {
    if (E.tp_pid == 0)
        return -3;
    kill(E.tp_pid, SIGTERM);
    int st = wait_exit(E.tp_pid, STOP_TIMEOUT_MS);
    if (st == -1) {
        fprintf(stderr, "test_service: tickplane ignored SIGTERM for %d ms, SIGKILL\n",
                STOP_TIMEOUT_MS);
        kill(E.tp_pid, SIGKILL);
        wait_exit(E.tp_pid, 5000);
    }
    E.tp_pid = 0;
    if (E.tp_exits < 8)
        E.tp_exit[E.tp_exits++] = st;
    return st;
}

/* ---- the Python scenario -------------------------------------------------------------------- */

static void reply(int fd, const char *line) {
    size_t len = strlen(line);
    CHECK(write(fd, line, len) == (ssize_t)len, "reply to the scenario: %s", strerror(errno));
}

static void handle_request(const char *req, int to_py) {
    char out[64];
    if (strcmp(req, "term") == 0) {
        int st = stop_tickplane();
        CHECK(st == 0, "tickplane exit status after SIGTERM (scenario request): %d", st);
        snprintf(out, sizeof out, "exited %d\n", st);
    } else if (strcmp(req, "start") == 0) {
        start_tickplane();
        snprintf(out, sizeof out, "port %d metrics %d\n", E.feed_port, E.metrics_port);
    } else if (strcmp(req, "freeze") == 0 || strcmp(req, "thaw") == 0) {
        CHECK(kill(redis_node()->pid, req[0] == 'f' ? SIGSTOP : SIGCONT) == 0, "%s redis: %s", req,
              strerror(errno));
        /* A literal: gcc -O2 cannot bound req and fails -Werror=format-truncation. */
        snprintf(out, sizeof out, "%s\n", req[0] == 'f' ? "freeze" : "thaw");
    } else if (strcmp(req, "signal") == 0) {
        CHECK(E.tp_pid > 0 && kill(E.tp_pid, SIGTERM) == 0, "SIGTERM tickplane: %s",
              strerror(errno));
        snprintf(out, sizeof out, "signalled\n");
    } else if (strcmp(req, "wait") == 0) {
        int st = wait_exit(E.tp_pid, STOP_TIMEOUT_MS);
        E.tp_pid = st == -1 ? E.tp_pid : 0;
        if (st != -1 && E.tp_exits < 8)
            E.tp_exit[E.tp_exits++] = st;
        snprintf(out, sizeof out, "exited %d\n", st);
    } else {
        CHECK(0, "unknown scenario request '%s'", req);
        snprintf(out, sizeof out, "error\n");
    }
    reply(to_py, out);
}

/* Runs trading_scenario.py <scenario> against E (serving its requests) until it
 * exits; returns its exit status. The expectations file is dir/expect.txt. */
static int run_scenario(const char *scenario, const char *seed) {
    char redis_port[16], feed_port[16], metrics[16], ca[256], expect[128];
    snprintf(redis_port, sizeof redis_port, "%d", redis_node()->port);
    snprintf(feed_port, sizeof feed_port, "%d", E.feed_port);
    snprintf(metrics, sizeof metrics, "%d", E.metrics_port);
    snprintf(expect, sizeof expect, "%s/expect.txt", E.dir);
    tp_test_cert("ca.crt", ca, sizeof ca);
    char *argv[] = {PYTHON,
                    TP_TRADING_SCENARIO,
                    (char *)scenario,
                    "--redis-port",
                    redis_port,
                    "--ca",
                    ca,
                    "--feed-port",
                    feed_port,
                    "--metrics-port",
                    metrics,
                    "--expect-out",
                    expect,
                    "--seed",
                    (char *)seed,
                    "--format",
                    (char *)E.event_format,
                    "--prefix",
                    "tp:",
                    "--mark-price",
                    (char *)E.mark_price,
                    "--restart-mark-price",
                    (char *)E.mark_price_2,
                    "--redis-cluster",
                    E.seeds,
                    NULL};
    char *envp[] = {"PYTHONPATH=" TP_WIRE_PYTHON_DIR, "PYTHONDONTWRITEBYTECODE=1",
                    "PYTHONUNBUFFERED=1", "LC_ALL=C.UTF-8", NULL};
    int in[2], out[2];
    REQUIRE(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    pid_t pid = spawn(argv, envp, in[0], out[1], -1);
    E.py_pid = pid;
    close(in[0]);
    close(out[1]);
    int to_py = in[1], from_py = out[0];

    char buf[4096];
    size_t have = 0;
    long long deadline = now_ms() + SCENARIO_TIMEOUT_MS;
    bool eof = false;
    while (!eof) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            CHECK(0, "scenario %s did not finish within %d ms", scenario, SCENARIO_TIMEOUT_MS);
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd p = {.fd = from_py, .events = POLLIN};
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t k = read(from_py, buf + have, sizeof buf - 1 - have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            eof = true;
            break;
        }
        have += (size_t)k;
        buf[have] = '\0';
        char *nl;
        while ((nl = memchr(buf, '\n', have)) != NULL) {
            *nl = '\0';
            if (strncmp(buf, "@@ ", 3) == 0)
                handle_request(buf + 3, to_py);
            else
                fprintf(stderr, "[scenario stdout] %s\n", buf);
            size_t used = (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have - used);
            have -= used;
        }
        if (have == sizeof buf - 1)
            have = 0; /* an overlong line: drop it */
    }
    close(to_py);
    close(from_py);
    int st = wait_exit(pid, 10000);
    if (st == -1) {
        kill(pid, SIGKILL);
        st = wait_exit(pid, 5000);
    }
    E.py_pid = 0;
    return st;
}

/* Checks the expectations the scenario wrote, each through redis-cli. Returns how
 * many were checked. */
static int check_expectations(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/expect.txt", E.dir);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL, "no expectations file %s", path);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL;
        char *cmd = strtok_r(line, "\t", &save);
        char *key = strtok_r(NULL, "\t", &save);
        char *arg = strtok_r(NULL, "\t", &save);
        char *want = strtok_r(NULL, "\t", &save);
        if (!cmd || !key || !arg)
            continue;
        if (!want)
            want = "";
        char got[512];
        int rc;
        /* -c: on a cluster, redis-cli follows the key to its master. */
        const char *argv[] = {"-c", cmd, key, arg};
        bool one = strcmp(cmd, "EXISTS") == 0 || strcmp(cmd, "SCARD") == 0;
        rc = tp_test_redis_cliv(redis_node(), got, sizeof got, argv, one ? 3 : 4);
        CHECK(rc == 0, "redis-cli %s %s %s: exit %d", cmd, key, arg, rc);
        CHECK(strcmp(got, want) == 0, "redis-cli %s %s %s: got '%s', want '%s'", cmd, key, arg, got,
              want);
        n++;
    }
    fclose(f);
    return n;
}

/* Starts tickplane, runs the scenario, checks its status and the expectations,
 * then stops tickplane (exit 0 wanted). */
static void run(const char *scenario, const char *seed) {
    start_tickplane();
    long long t0 = now_ms();
    int st = run_scenario(scenario, seed);
    fprintf(stderr, "test_service: scenario %s exited %d after %lld ms\n", scenario, st,
            now_ms() - t0);
    CHECK(st == 0, "scenario %s failed (exit %d); see its output above", scenario, st);
    int n = check_expectations();
    CHECK(n > 0, "the scenario wrote no expectations");
    fprintf(stderr, "test_service: %d expectations checked through redis-cli\n", n);
    if (E.tp_pid) {
        int ex = stop_tickplane();
        CHECK(ex == 0, "tickplane exit status after the final SIGTERM: %d", ex);
    }
    for (int i = 0; i < E.tp_exits; i++)
        CHECK(E.tp_exit[i] == 0, "tickplane run %d exited %d", i + 1, E.tp_exit[i]);
}

/* ---- fixture -------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup_common(void) {
    signal(SIGPIPE, SIG_IGN);
    memset(&E, 0, sizeof E);
    E.event_format = "flatbuffers";
    E.mark_price = E.mark_price_2 = "last";
    snprintf(E.dir, sizeof E.dir, "/tmp/tp-e2e-XXXXXX");
    cr_assert_not_null(mkdtemp(E.dir), "mkdtemp: %s", strerror(errno));
}

static void setup(void) {
    setup_common();
    tp_test_redis_opts_t o = {.tls = true};
    cr_assert_eq(tp_test_redis_start(&E.srv, &o), 0, "TLS redis-server did not start");
}

static void teardown(void) {
    if (E.py_pid > 0) {
        kill(E.py_pid, SIGKILL);
        wait_exit(E.py_pid, 5000);
    }
    if (E.tp_pid > 0) {
        kill(E.tp_pid, SIGKILL);
        wait_exit(E.tp_pid, 5000);
        E.tp_pid = 0;
    }
    bool keep = getenv("TP_E2E_KEEP") != NULL;
    if (E.failed) {
        dump_logs();
        keep = true;
    }
    tp_test_redis_stop(&E.srv);
    tp_test_cluster_stop(&E.cl);
    if (keep)
        fprintf(stderr, "test_service: logs kept in %s\n", E.dir);
    else
        nftw(E.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(e2e, .init = setup, .fini = teardown, .timeout = 200);

/* The same service against a Redis Cluster of 3 masters + 3 replicas over TLS. */
static void setup_cluster(void) {
    setup_common();
    cr_assert_eq(tp_test_cluster_start(&E.cl, 3, 1, true), 0, "the TLS cluster did not start");
    E.cluster = true;
    tp_test_cluster_seeds(&E.cl, E.seeds, sizeof E.seeds);
}

TestSuite(e2e_cluster, .init = setup_cluster, .fini = teardown, .timeout = 200);

/* Ticks, orders and portfolios over 3 accounts land on their masters and equal the models;
 * every event is published once; a restart restores from every master. */
Test(e2e_cluster, prices_equal_the_last_tick_per_symbol) {
    run("prices", "101");
}

/* With TP_ACK_REPLICAS=1 every order event's writes reach a replica before its ack. */
Test(e2e_cluster, orders_equal_the_reference_model) {
    E.ack_replicas = "1";
    run("orders", "7");
}

Test(e2e_cluster, events_flatbuffers_exactly_once) {
    run("events", "5");
}

Test(e2e_cluster, restart_resumes_without_double_applying) {
    run("restart", "11");
}

/* 2,000 ticks over 50 symbols; every tp:px:SYM is the last tick of its symbol. */
Test(e2e, prices_equal_the_last_tick_per_symbol) {
    run("prices", "101");
}

/* A random valid flow over 3 accounts with invalid events and duplicates mixed in:
 * every order hash, open set and portfolio equals the reference model. */
Test(e2e, orders_equal_the_reference_model) {
    run("orders", "202");
}

/* 10,000 fills with flips over 2 accounts x 5 symbols: positions exact, PnL to the
 * cent of an exact rational oracle. */
Test(e2e, portfolio_matches_the_exact_oracle) {
    run("portfolio", "303");
}

/* A TLS subscriber sees each expected event exactly once (FlatBuffers "TPE1"). */
Test(e2e, events_flatbuffers_exactly_once) {
    run("events", "404");
}

/* The same with TP_EVENT_FORMAT=json. */
Test(e2e, events_json_exactly_once) {
    E.event_format = "json";
    run("events", "405");
}

/* Half a flow, SIGTERM, a new tickplane on the same Redis, the rest with the last
 * 20 frames resent: nothing applied or published twice, state equals the model. */
Test(e2e, restart_resumes_without_double_applying) {
    run("restart", "505");
}

/* Counts the log lines of the first tickplane run that contain every needle. */
static int log_lines_with(const char *a, const char *b) {
    char path[128], line[8192];
    snprintf(path, sizeof path, "%s/tickplane-1.log", E.dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, a) && strstr(line, b);
    if (f)
        fclose(f);
    return n;
}

/* /livez, /readyz and /metrics through curl, the page parsed by prometheus_client:
 * counters equal the traffic sent, each latency histogram counts exactly what it
 * should; on SIGTERM with Redis frozen /readyz fails at once while /livez holds,
 * and the drain then acks everything. The periodic summary is in the log. */
Test(e2e, metrics_probes_and_latency) {
    run("metrics", "707");
    /* The run lasts over a second: periodic lines, then the final one at exit. */
    int n = log_lines_with("\"msg\":\"latency\"", "\"e2e_p99_us\":");
    CHECK(n >= 3, "%d latency summary lines in the log, want periodic ones and a final one", n);
}

/* A burst, SIGTERM at once: exit 0 and everything acked is in Redis. */
Test(e2e, sigterm_loses_nothing_acked) {
    run("sigterm", "606");
}

/* Marks to market, TP_MARK_PRICE=last: ticks of every kind (a last trade, a bid/ask mid, one
 * side only, nothing) move traded symbols between fills; every SYM:mark, SYM:upnl and the
 * totals equal the model's exactly, each fill's event carries its upnl at the latest quote,
 * and after a restart fills with no new tick mark at the quotes restored from tp:px:*. */
Test(e2e, marks_last_follow_prices_across_a_restart) {
    run("marks", "808");
}

/* The same with TP_MARK_PRICE=mid, restarted with bid_ask: the restart re-marks every open
 * position at the restored quotes by the new rule before any frame arrives. */
Test(e2e, marks_mid_then_bid_ask_after_a_restart) {
    E.mark_price = "mid";
    E.mark_price_2 = "bid_ask";
    run("marks", "809");
}

/* The same with TP_MARK_PRICE=bid_ask (longs at the bid, shorts at the ask), restarted with
 * last. */
Test(e2e, marks_bid_ask_then_last_after_a_restart) {
    E.mark_price = "bid_ask";
    E.mark_price_2 = "last";
    run("marks", "810");
}
