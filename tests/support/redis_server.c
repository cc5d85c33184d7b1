/* Test fixture: a real redis-server per test (see redis_server.h). */
#define _GNU_SOURCE

#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TP_TEST_CERTS_DIR
#error "TP_TEST_CERTS_DIR must be defined (tests/CMakeLists.txt)"
#endif
#ifndef TP_REDIS_SERVER
#error "TP_REDIS_SERVER must be defined (tests/CMakeLists.txt)"
#endif
#ifndef TP_REDIS_CLI
#error "TP_REDIS_CLI must be defined (tests/CMakeLists.txt)"
#endif

enum {
    READY_TIMEOUT_MS = 5000,   /* per launch: until "Ready" + PONG */
    RESTART_BIND_MS = 5000,    /* restart: keep retrying the same port this long */
    START_ATTEMPTS = 5,        /* start: new ports tried when the port was taken */
    STOP_GRACE_MS = 3000,      /* SIGTERM -> SIGKILL */
    CLI_TIMEOUT_MS = 30000,    /* tp_test_redis_cli() */
    PING_CLI_TIMEOUT_MS = 2000 /* one readiness probe through redis-cli */
};

/* A path in TP_TEST_CERTS_DIR (a string literal) with a file name of up to ~90 bytes. */
#define CERT_PATH_LEN (sizeof TP_TEST_CERTS_DIR + 96)

static const char READY_LINE[] = "Ready to accept connections";

/* ---- small helpers ---------------------------------------------------------------------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Copies src (NULL = "") into dst; -1 when it does not fit. */
static int copy_str(char *dst, size_t len, const char *src) {
    if (!src) {
        src = "";
    }
    size_t n = strlen(src);
    if (n >= len) {
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

/* Child side of fork(): closes every descriptor above 2 (no inherited sockets or pipes may
 * outlive their owner in the parent) and clears the signal mask. Async-signal-safe only. */
static void child_reset(void) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (close_range(3, ~0U, 0) != 0) {
        for (int fd = 3; fd < 4096; fd++) {
            close(fd);
        }
    }
}

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Reads path from offset (at most 1 MiB) into a NUL-terminated malloc'ed buffer, or NULL. */
static char *read_from(const char *path, off_t offset) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 1);
    size_t n = 0;
    if (buf && lseek(fd, offset, SEEK_SET) == offset) {
        ssize_t got;
        while (n < cap && (got = read(fd, buf + n, cap - n)) > 0) {
            n += (size_t)got;
        }
    }
    close(fd);
    if (buf) {
        buf[n] = '\0';
    }
    return buf;
}

static bool log_contains(const tp_test_redis_t *r, off_t offset, const char *needle) {
    char *text = read_from(r->log, offset);
    bool found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

static void print_log_tail(const tp_test_redis_t *r) {
    off_t size = file_size(r->log);
    off_t from = size > 4096 ? size - 4096 : 0;
    char *text = read_from(r->log, from);
    fprintf(stderr, "---- tail of %s ----\n%s---- end of redis log ----\n", r->log,
            text ? text : "(unreadable)\n");
    free(text);
}

/* Sends sig to the server's process group (it is its own group leader), or to the process when
 * the group does not exist yet. */
static void signal_server(const tp_test_redis_t *r, int sig) {
    if (r->pid <= 0) {
        return;
    }
    if (kill(-r->pid, sig) != 0) {
        kill(r->pid, sig);
    }
}

/* Non-blocking reap: true (and pid = 0) when the server has exited. */
static bool reap_if_exited(tp_test_redis_t *r) {
    if (r->pid <= 0) {
        return true;
    }
    int st;
    pid_t got = waitpid(r->pid, &st, WNOHANG);
    if (got == r->pid || (got < 0 && errno == ECHILD)) {
        r->pid = 0;
        r->paused = false;
        return true;
    }
    return false;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- redis.conf --------------------------------------------------------------------------- */

/* Writes s as a redis.conf double-quoted string. */
static void put_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
    fputc('"', f);
}

static void put_cert(FILE *f, const char *directive, const char *set, const char *name,
                     const char *ext) {
    char path[CERT_PATH_LEN];
    snprintf(path, sizeof path, "%s/%s%s%s", TP_TEST_CERTS_DIR, set, name, ext);
    fprintf(f, "%s ", directive);
    put_quoted(f, path);
    fputc('\n', f);
}

static int write_conf(const tp_test_redis_t *r, const char *extra_conf) {
    FILE *f = fopen(r->conf, "w");
    if (!f) {
        fprintf(stderr, "tp_test_redis: cannot write %s: %s\n", r->conf, strerror(errno));
        return -1;
    }
    fprintf(f, "# written by tests/support/redis_server.c\n");
    if (r->tls) {
        fprintf(f, "port 0\ntls-port %d\n", r->port);
        put_cert(f, "tls-cert-file", "", r->server_cert_name_buf, ".crt");
        put_cert(f, "tls-key-file", "", r->server_cert_name_buf, ".key");
        put_cert(f, "tls-ca-cert-file", r->cert_set_buf, "ca", ".crt");
        fprintf(f, "tls-auth-clients %s\n", r->opts.tls_auth_clients ? "yes" : "no");
    } else {
        fprintf(f, "port %d\n", r->port);
    }
    fprintf(f, "bind 127.0.0.1\n"
               "protected-mode no\n"
               "save \"\"\n"
               "appendonly no\n"
               "daemonize no\n"
               "enable-debug-command yes\n");
    fprintf(f, "dir ");
    put_quoted(f, r->dir);
    fprintf(f, "\nlogfile ");
    put_quoted(f, r->log);
    fputc('\n', f);
    if (r->requirepass_buf[0]) {
        fprintf(f, "requirepass ");
        put_quoted(f, r->requirepass_buf);
        fputc('\n', f);
    }
    if (r->acl_user_buf[0]) {
        char pass[TP_TEST_SECRET_LEN + 1];
        snprintf(pass, sizeof pass, ">%s", r->acl_pass_buf);
        fprintf(f, "user ");
        put_quoted(f, r->acl_user_buf);
        fprintf(f, " on ");
        put_quoted(f, pass);
        fprintf(f, " ~* &* +@all\n");
    }
    if (extra_conf) {
        fprintf(f, "# extra_conf\n%s\n", extra_conf);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "tp_test_redis: cannot write %s: %s\n", r->conf, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- readiness probes ---------------------------------------------------------------------- */

/* Appends one RESP bulk string. */
static size_t put_bulk(char *buf, size_t len, size_t at, const char *s) {
    int n = snprintf(buf + at, at < len ? len - at : 0, "$%zu\r\n%s\r\n", strlen(s), s);
    return at + (n > 0 ? (size_t)n : 0);
}

/* Plain TCP: [AUTH ...] + PING on a raw socket; 0 when the last reply is +PONG. The last reply
 * line goes to last (for the error message). */
static int ping_plain(const tp_test_redis_t *r, char *last, size_t lastlen) {
    last[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(last, lastlen, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }

    char req[4 * TP_TEST_SECRET_LEN + 64];
    size_t n = 0;
    int replies = 1;
    if (r->acl_user_buf[0]) {
        n += (size_t)snprintf(req + n, sizeof req - n, "*3\r\n");
        n = put_bulk(req, sizeof req, n, "AUTH");
        n = put_bulk(req, sizeof req, n, r->acl_user_buf);
        n = put_bulk(req, sizeof req, n, r->acl_pass_buf);
        replies++;
    } else if (r->requirepass_buf[0]) {
        n += (size_t)snprintf(req + n, sizeof req - n, "*2\r\n");
        n = put_bulk(req, sizeof req, n, "AUTH");
        n = put_bulk(req, sizeof req, n, r->requirepass_buf);
        replies++;
    }
    if (n < sizeof req) {
        n += (size_t)snprintf(req + n, sizeof req - n, "*1\r\n$4\r\nPING\r\n");
    }
    if (n >= sizeof req || send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
        close(fd);
        return -1;
    }

    char resp[512];
    size_t got = 0;
    int lines = 0;
    while (lines < replies && got < sizeof resp - 1) {
        ssize_t k = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
        resp[got] = '\0';
        lines = 0;
        for (const char *p = resp; (p = strstr(p, "\r\n")) != NULL; p += 2) {
            lines++;
        }
    }
    close(fd);
    resp[got] = '\0';
    if (lines < replies) {
        snprintf(last, lastlen, "incomplete reply \"%.200s\"", resp);
        return -1;
    }
    /* The last complete line is the PING reply. */
    char *end = resp + got - 2;
    *end = '\0';
    char *line = strrchr(resp, '\n');
    line = line ? line + 1 : resp;
    snprintf(last, lastlen, "%.200s", line);
    return strcmp(line, "+PONG") == 0 ? 0 : -1;
}

static int run_cli(tp_test_redis_t *r, bool quiet, int timeout_ms, char *out, size_t outlen,
                   const char *const *args, size_t nargs);

static int ping_server(tp_test_redis_t *r, char *last, size_t lastlen) {
    if (!r->tls) {
        return ping_plain(r, last, lastlen);
    }
    const char *args[] = {"PING"};
    char out[256];
    int rc = run_cli(r, true, PING_CLI_TIMEOUT_MS, out, sizeof out, args, 1);
    snprintf(last, lastlen, "redis-cli exit %d: \"%.200s\"", rc, out);
    return rc == 0 && strcmp(out, "PONG") == 0 ? 0 : -1;
}

/* ---- launching -------------------------------------------------------------------------- */

enum launch_result { LAUNCH_OK, LAUNCH_PORT_TAKEN, LAUNCH_FAILED };

/* Forks + execs redis-server on r->conf and waits until ready. On failure nothing is left
 * running. */
static enum launch_result launch(tp_test_redis_t *r) {
    off_t log_off = file_size(r->log);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tp_test_redis: fork: %s\n", strerror(errno));
        return LAUNCH_FAILED;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127); /* the test died before prctl() */
        }
        int in = open("/dev/null", O_RDONLY);
        int logfd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || logfd < 0) {
            _exit(127);
        }
        /* Early errors (bad config) are printed to stderr before the log file is opened. */
        dup2(in, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        child_reset();
        execl(TP_REDIS_SERVER, TP_REDIS_SERVER, r->conf, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so kill(-pid) works at once; may fail after exec */
    r->pid = pid;
    r->paused = false;

    long long deadline = now_ms() + READY_TIMEOUT_MS;
    bool ready_logged = false;
    char last[256] = "no attempt";
    for (;;) {
        if (reap_if_exited(r)) {
            if (log_contains(r, log_off, "Address already in use") ||
                log_contains(r, log_off, "Failed listening on port")) {
                return LAUNCH_PORT_TAKEN;
            }
            fprintf(stderr, "tp_test_redis: %s exited during startup (conf %s)\n", TP_REDIS_SERVER,
                    r->conf);
            return LAUNCH_FAILED;
        }
        /* "Ready" in the log of this launch proves that this process owns the port, so the
         * PING cannot be answered by another test's server. */
        if (!ready_logged) {
            ready_logged = log_contains(r, log_off, READY_LINE);
        }
        if (ready_logged && ping_server(r, last, sizeof last) == 0) {
            return LAUNCH_OK;
        }
        if (now_ms() > deadline) {
            fprintf(stderr, "tp_test_redis: server on port %d not ready after %d ms (%s; %s)\n",
                    r->port, READY_TIMEOUT_MS, ready_logged ? "logged ready" : "not logged ready",
                    last);
            signal_server(r, SIGKILL);
            waitpid(r->pid, NULL, 0);
            r->pid = 0;
            return LAUNCH_FAILED;
        }
        sleep_ms(20);
    }
}

/* A port that was free a moment ago on 127.0.0.1 (bind to port 0, read it back, close). */
static int pick_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

/* Records the certificate set and the server certificate ("<set>server" when name is NULL). */
static int set_certs(tp_test_redis_t *r, const char *set, const char *name) {
    char def[sizeof r->server_cert_name_buf];
    if (copy_str(r->cert_set_buf, sizeof r->cert_set_buf, set) != 0) {
        return -1;
    }
    snprintf(def, sizeof def, "%sserver", r->cert_set_buf);
    return copy_str(r->server_cert_name_buf, sizeof r->server_cert_name_buf, name ? name : def);
}

/* The extra_conf lines of the current redis.conf (malloc'ed, without the newline write_conf adds),
 * or NULL when it has none. */
static char *saved_extra_conf(const tp_test_redis_t *r) {
    static const char marker[] = "# extra_conf\n";
    char *text = read_from(r->conf, 0);
    char *at = text ? strstr(text, marker) : NULL;
    char *extra = NULL;
    if (at) {
        at += sizeof marker - 1;
        size_t n = strlen(at);
        extra = strndup(at, n > 0 && at[n - 1] == '\n' ? n - 1 : n);
    }
    free(text);
    return extra;
}

/* ---- public API ------------------------------------------------------------------------ */

int tp_test_redis_start(tp_test_redis_t *r, const tp_test_redis_opts_t *opts) {
    static const tp_test_redis_opts_t plain = {0};
    if (!opts) {
        opts = &plain;
    }
    memset(r, 0, sizeof *r);
    if (set_certs(r, opts->cert_set, opts->server_cert_name) != 0 ||
        copy_str(r->requirepass_buf, sizeof r->requirepass_buf, opts->requirepass) != 0 ||
        copy_str(r->acl_user_buf, sizeof r->acl_user_buf, opts->acl_user) != 0 ||
        copy_str(r->acl_pass_buf, sizeof r->acl_pass_buf, opts->acl_pass) != 0) {
        fprintf(stderr, "tp_test_redis_start: an option string is too long\n");
        return -1;
    }
    if ((r->acl_user_buf[0] != '\0') != (r->acl_pass_buf[0] != '\0')) {
        fprintf(stderr, "tp_test_redis_start: acl_user and acl_pass go together\n");
        return -1;
    }
    r->opts = *opts;
    r->opts.server_cert_name = r->server_cert_name_buf;
    r->opts.cert_set = r->cert_set_buf;
    r->opts.requirepass = opts->requirepass ? r->requirepass_buf : NULL;
    r->opts.acl_user = opts->acl_user ? r->acl_user_buf : NULL;
    r->opts.acl_pass = opts->acl_pass ? r->acl_pass_buf : NULL;
    r->opts.extra_conf = NULL;
    r->tls = opts->tls;

    char tmpl[] = "/tmp/tp-redis-XXXXXX";
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "tp_test_redis_start: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(r->dir, sizeof r->dir, "%s", tmpl);
    snprintf(r->conf, sizeof r->conf, "%s/redis.conf", r->dir);
    snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);

    enum launch_result res = LAUNCH_FAILED;
    for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
        r->port = pick_port();
        if (r->port <= 0) {
            fprintf(stderr, "tp_test_redis_start: no free port: %s\n", strerror(errno));
            break;
        }
        if (write_conf(r, opts->extra_conf) != 0) {
            break;
        }
        res = launch(r);
        if (res != LAUNCH_PORT_TAKEN) {
            break;
        }
    }
    if (res == LAUNCH_OK) {
        return 0;
    }
    if (res == LAUNCH_PORT_TAKEN) {
        fprintf(stderr, "tp_test_redis_start: every port tried was taken\n");
    }
    print_log_tail(r);
    tp_test_redis_stop(r);
    return -1;
}

void tp_test_redis_stop(tp_test_redis_t *r) {
    if (!r) {
        return;
    }
    if (r->pid > 0) {
        signal_server(r, SIGTERM);
        signal_server(r, SIGCONT); /* a stopped process would not act on SIGTERM */
        long long deadline = now_ms() + STOP_GRACE_MS;
        while (!reap_if_exited(r) && now_ms() < deadline) {
            sleep_ms(10);
        }
        if (r->pid > 0) {
            fprintf(stderr, "tp_test_redis_stop: pid %d ignored SIGTERM for %d ms, SIGKILL\n",
                    (int)r->pid, STOP_GRACE_MS);
            signal_server(r, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
    }
    r->pid = 0;
    r->paused = false;
    if (r->dir[0]) {
        nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        r->dir[0] = '\0';
        r->conf[0] = '\0';
        r->log[0] = '\0';
    }
}

void tp_test_redis_kill(tp_test_redis_t *r) {
    if (!r || r->pid <= 0) {
        return;
    }
    signal_server(r, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    r->paused = false;
}

int tp_test_redis_restart(tp_test_redis_t *r) {
    if (!r || !r->dir[0]) {
        fprintf(stderr, "tp_test_redis_restart: server was never started\n");
        return -1;
    }
    tp_test_redis_kill(r);
    long long deadline = now_ms() + RESTART_BIND_MS;
    for (;;) {
        enum launch_result res = launch(r);
        if (res == LAUNCH_OK) {
            return 0;
        }
        if (res != LAUNCH_PORT_TAKEN || now_ms() > deadline) {
            fprintf(stderr, "tp_test_redis_restart: could not restart on port %d\n", r->port);
            print_log_tail(r);
            return -1;
        }
        sleep_ms(100);
    }
}

int tp_test_redis_restart_with_certs(tp_test_redis_t *r, const char *cert_set) {
    if (!r || !r->dir[0]) {
        fprintf(stderr, "tp_test_redis_restart_with_certs: server was never started\n");
        return -1;
    }
    tp_test_redis_kill(r);
    if (set_certs(r, cert_set, NULL) != 0) {
        fprintf(stderr, "tp_test_redis_restart_with_certs: cert_set too long\n");
        return -1;
    }
    char *extra = saved_extra_conf(r);
    int rc = write_conf(r, extra);
    free(extra);
    return rc == 0 ? tp_test_redis_restart(r) : -1;
}

void tp_test_redis_pause(tp_test_redis_t *r) {
    if (!r || r->pid <= 0 || r->paused) {
        return;
    }
    signal_server(r, SIGSTOP);
    long long deadline = now_ms() + 2000;
    while (now_ms() < deadline) {
        int st;
        pid_t got = waitpid(r->pid, &st, WNOHANG | WUNTRACED);
        if (got == r->pid && WIFSTOPPED(st)) {
            r->paused = true;
            return;
        }
        if (got == r->pid) { /* exited */
            r->pid = 0;
            return;
        }
        sleep_ms(1);
    }
    fprintf(stderr, "tp_test_redis_pause: pid %d did not report stopped\n", (int)r->pid);
    r->paused = true;
}

void tp_test_redis_resume(tp_test_redis_t *r) {
    if (!r || r->pid <= 0 || !r->paused) {
        return;
    }
    signal_server(r, SIGCONT);
    r->paused = false;
    long long deadline = now_ms() + 2000;
    while (now_ms() < deadline) {
        int st;
        pid_t got = waitpid(r->pid, &st, WNOHANG | WCONTINUED);
        if (got == r->pid && WIFCONTINUED(st)) {
            return;
        }
        if (got == r->pid) { /* exited */
            r->pid = 0;
            return;
        }
        sleep_ms(1);
    }
    fprintf(stderr, "tp_test_redis_resume: pid %d did not report continued\n", (int)r->pid);
}

/* The CA that issued the server's certificate: "<prefix>ca.crt" for server_cert_name
 * "<prefix>server" ("server" -> ca.crt, "other-server" -> other-ca.crt) when that file exists,
 * else ca.crt. */
static void server_ca_path(const tp_test_redis_t *r, char *buf, size_t len) {
    const char *name = r->server_cert_name_buf;
    size_t n = strlen(name);
    size_t suffix = strlen("server");
    if (n >= suffix && strcmp(name + n - suffix, "server") == 0) {
        char file[sizeof r->server_cert_name_buf + 8];
        snprintf(file, sizeof file, "%.*sca.crt", (int)(n - suffix), name);
        tp_test_cert(file, buf, len);
        if (access(buf, R_OK) == 0) {
            return;
        }
    }
    tp_test_cert("ca.crt", buf, len);
}

/* Runs redis-cli with the connection arguments for r followed by args; see tp_test_redis_cli. */
static int run_cli(tp_test_redis_t *r, bool quiet, int timeout_ms, char *out, size_t outlen,
                   const char *const *args, size_t nargs) {
    if (out && outlen) {
        out[0] = '\0';
    }
    char port[16], ca[CERT_PATH_LEN], cert[CERT_PATH_LEN], key[CERT_PATH_LEN];
    snprintf(port, sizeof port, "%d", r->port);
    server_ca_path(r, ca, sizeof ca);
    char file[sizeof r->cert_set_buf + 16];
    snprintf(file, sizeof file, "%sclient.crt", r->cert_set_buf);
    tp_test_cert(file, cert, sizeof cert);
    snprintf(file, sizeof file, "%sclient.key", r->cert_set_buf);
    tp_test_cert(file, key, sizeof key);

    /* Everything is prepared before fork(): the child only calls async-signal-safe functions. */
    const char **argv = calloc(24 + nargs, sizeof *argv);
    if (!argv) {
        return -1;
    }
    size_t n = 0;
    argv[n++] = TP_REDIS_CLI;
    argv[n++] = "-h";
    argv[n++] = "127.0.0.1";
    argv[n++] = "-p";
    argv[n++] = port;
    if (r->tls) {
        argv[n++] = "--tls";
        argv[n++] = "--cacert";
        argv[n++] = ca;
        if (r->opts.tls_auth_clients) {
            argv[n++] = "--cert";
            argv[n++] = cert;
            argv[n++] = "--key";
            argv[n++] = key;
        }
    }
    if (r->acl_user_buf[0]) {
        argv[n++] = "--user";
        argv[n++] = r->acl_user_buf;
        argv[n++] = "--pass";
        argv[n++] = r->acl_pass_buf;
    } else if (r->requirepass_buf[0]) {
        argv[n++] = "-a";
        argv[n++] = r->requirepass_buf;
    }
    argv[n++] = "--no-auth-warning";
    argv[n++] = "--raw";
    for (size_t i = 0; i < nargs; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        free(argv);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        free(argv);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDWR);
        if (in < 0) {
            _exit(127);
        }
        dup2(in, 0);
        dup2(fds[1], 1);
        if (quiet) {
            dup2(in, 2);
        }
        child_reset();
        execv(TP_REDIS_CLI, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    close(fds[1]);

    /* Drain all of stdout (so the child never blocks on a full pipe), keep what fits. */
    size_t used = 0;
    bool timed_out = false;
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr <= 0) {
            timed_out = pr == 0;
            break;
        }
        char chunk[4096];
        ssize_t k = read(fds[0], chunk, sizeof chunk);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            break;
        }
        if (out && outlen > 1 && used < outlen - 1) {
            size_t take = (size_t)k < outlen - 1 - used ? (size_t)k : outlen - 1 - used;
            memcpy(out + used, chunk, take);
            used += take;
        }
    }
    close(fds[0]);
    if (timed_out) {
        kill(pid, SIGKILL);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (out && outlen) {
        while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == '\r')) {
            used--;
        }
        out[used] = '\0';
    }
    if (timed_out) {
        if (!quiet) {
            fprintf(stderr, "tp_test_redis_cli: redis-cli timed out after %d ms\n", timeout_ms);
        }
        return -1;
    }
    if (WIFEXITED(st)) {
        return WEXITSTATUS(st);
    }
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

int tp_test_redis_cli(tp_test_redis_t *r, char *out, size_t outlen, const char *cmd, ...) {
    size_t nargs = 1;
    va_list ap;
    va_start(ap, cmd);
    while (va_arg(ap, const char *) != NULL) {
        nargs++;
    }
    va_end(ap);

    const char **args = calloc(nargs, sizeof *args);
    if (!args) {
        return -1;
    }
    args[0] = cmd;
    va_start(ap, cmd);
    for (size_t i = 1; i < nargs; i++) {
        args[i] = va_arg(ap, const char *);
    }
    va_end(ap);
    int rc = run_cli(r, false, CLI_TIMEOUT_MS, out, outlen, args, nargs);
    free(args);
    return rc;
}

const char *tp_test_cert(const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", TP_TEST_CERTS_DIR, name);
    return buf;
}

int tp_test_redis_cliv(tp_test_redis_t *r, char *out, size_t outlen, const char *const *args,
                       size_t nargs) {
    return run_cli(r, false, CLI_TIMEOUT_MS, out, outlen, args, nargs);
}

const char *tp_test_cli(tp_test_redis_t *r, const char *a, const char *b, const char *c) {
    static char out[512];
    tp_test_redis_cli(r, out, sizeof(out), a, b, c, NULL);
    return out;
}
