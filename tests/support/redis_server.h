/* Test fixture: a REAL redis-server on a free loopback port, one per tp_test_redis_t.
 *
 * Ownership: the fixture owns the redis-server child process and a fresh temporary directory
 * (/tmp/tp-redis-XXXXXX) holding redis.conf and redis.log; tp_test_redis_stop() ends the one
 * and removes the other. The certificates are NOT owned here: they live in TP_TEST_CERTS_DIR
 * and are written by tests/support/gen_certs.sh (the ctest fixture "gen_certs"):
 *   ca.crt            the CA the tests trust; server.crt/.key and client.crt/.key are signed by it
 *   server.crt/.key   CN localhost, SAN DNS:localhost + IP:127.0.0.1 (the default server cert)
 *   client.crt/.key   client certificate (EKU clientAuth) for mTLS
 *   other-ca.crt/.key an unrelated CA
 *   other-server.crt/.key  same names as server.crt but signed by other-ca ("unknown CA" tests)
 *   rot-ca.crt, rot-server.crt/.key, rot-client.crt/.key
 *                     a second, unrelated set (cert_set "rot-") that rotation tests move to
 *
 * Compile definitions (tests/CMakeLists.txt): TP_TEST_CERTS_DIR, TP_REDIS_SERVER (path of
 * redis-server), TP_REDIS_CLI (path of redis-cli).
 *
 * The server runs in the foreground as a child of the test process, in its own process group,
 * with PR_SET_PDEATHSIG = SIGKILL, so a crashed test never leaks a server (it may leak the
 * temporary directory). The server has: bind 127.0.0.1, no persistence, protected-mode no,
 * enable-debug-command yes (DEBUG SLEEP works). With tls the plain port is disabled (port 0)
 * and r->port is the TLS port.
 *
 * Not thread-safe; every function blocks. Call start/restart from the thread that will outlive
 * the server (the test's main thread): PR_SET_PDEATHSIG fires when the forking THREAD exits.
 * Typical use in a Criterion suite:
 *
 *     static tp_test_redis_t srv;
 *     static void setup(void) {
 *         tp_test_redis_opts_t o = {.tls = true};
 *         cr_assert_eq(tp_test_redis_start(&srv, &o), 0);
 *     }
 *     static void teardown(void) { tp_test_redis_stop(&srv); }
 */
#ifndef TP_TEST_REDIS_SERVER_H
#define TP_TEST_REDIS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Maximum length (with NUL) of paths kept in tp_test_redis_t. */
#define TP_TEST_PATH_LEN 256
/* Maximum length (with NUL) of the user name and passwords kept in tp_test_redis_t. */
#define TP_TEST_SECRET_LEN 128

/* How the server is configured. Zero-initialise it and set what you need; the strings are only
 * read during tp_test_redis_start() (they are copied). */
typedef struct {
    bool tls;                     /* TLS only: `port 0` + `tls-port <port>` */
    bool tls_auth_clients;        /* tls-auth-clients yes: clients need a cert of <cert_set>ca */
    const char *server_cert_name; /* "<cert_set>server" (default when NULL) or "other-server" */
    const char *requirepass;      /* legacy password of the default user; NULL = none */
    const char *acl_user;         /* with acl_pass: `user <u> on ><p> ~* &* +@all` */
    const char *acl_pass;         /* (the default user stays on, nopass unless requirepass) */
    const char *extra_conf;       /* raw redis.conf lines appended verbatim; NULL = none */
    /* The certificate set, as a file name prefix: NULL or "" = ca, server, client; "rot-" =
     * rot-ca, rot-server, rot-client. The server trusts <cert_set>ca.crt for client certificates
     * and redis-cli presents <cert_set>client.crt/.key. */
    const char *cert_set;
} tp_test_redis_opts_t;

/* One server. Zero-initialise it (or start it) before any other call. The fields are for
 * reading only. */
typedef struct {
    pid_t pid;                        /* redis-server process; 0 while not running */
    int port;                         /* the port clients connect to (the TLS port when tls) */
    bool tls;                         /* same as opts.tls */
    bool paused;                      /* SIGSTOPped by tp_test_redis_pause() */
    char dir[TP_TEST_PATH_LEN];       /* temporary directory; "" when stopped */
    char conf[TP_TEST_PATH_LEN + 32]; /* dir + "/redis.conf" */
    char log[TP_TEST_PATH_LEN + 32];  /* dir + "/redis.log" (appended to across restarts) */
    /* A copy of the options. Its strings point into the buffers below, so they stay valid as
     * long as this struct does not move; extra_conf is always NULL here (it is in conf). */
    tp_test_redis_opts_t opts;
    char server_cert_name_buf[64];
    char cert_set_buf[32];
    char requirepass_buf[TP_TEST_SECRET_LEN];
    char acl_user_buf[TP_TEST_SECRET_LEN];
    char acl_pass_buf[TP_TEST_SECRET_LEN];
} tp_test_redis_t;

/* Starts a server (opts NULL = plain TCP, no auth); r is overwritten, so it must not hold a
 * running server. Picks a free loopback port, writes
 * redis.conf into a fresh temporary directory, forks + execs TP_REDIS_SERVER and waits (up to
 * ~5 s) until that very process logged "Ready to accept connections" and answers PING (with
 * AUTH when a password is set; through TP_REDIS_CLI when tls). Retries with a new port when the
 * port was taken in between. Returns 0, or -1 after printing the reason and the tail of
 * redis.log to stderr (then nothing is left running and r is as after tp_test_redis_stop()). */
int tp_test_redis_start(tp_test_redis_t *r, const tp_test_redis_opts_t *opts);

/* SIGTERM (plus SIGCONT, in case it is paused), waitpid, SIGKILL after 3 s; then removes the
 * temporary directory recursively. Safe when never started, killed or already stopped. */
void tp_test_redis_stop(tp_test_redis_t *r);

/* SIGKILL + waitpid: the server dies at once, clients see a reset / EOF. The directory, conf and
 * port are kept for tp_test_redis_restart(). No-op when not running. */
void tp_test_redis_kill(tp_test_redis_t *r);

/* Starts the server again with the same redis.conf on the SAME port (the process is killed
 * first if still running). Retries for up to ~5 s while the port cannot be bound yet, then waits
 * until ready as tp_test_redis_start() does. The data set is empty again (no persistence).
 * Returns 0 or -1 (with the log tail on stderr; dir and port are kept, so stop() still cleans
 * up). */
int tp_test_redis_restart(tp_test_redis_t *r);

/* tp_test_redis_restart() with another certificate set (see tp_test_redis_opts_t.cert_set;
 * server_cert_name becomes "<cert_set>server"), for tests where the server's CA and certificate
 * are rotated: redis.conf is rewritten (its extra_conf lines are kept) and the server comes back
 * on the same port. Returns 0 or -1 as tp_test_redis_restart(). */
int tp_test_redis_restart_with_certs(tp_test_redis_t *r, const char *cert_set);

/* SIGSTOP / SIGCONT: a paused server keeps its connections open but answers nothing (for
 * timeout tests). Both wait until the state change took effect. No-op when not running. */
void tp_test_redis_pause(tp_test_redis_t *r);
void tp_test_redis_resume(tp_test_redis_t *r);

/* Runs TP_REDIS_CLI -h 127.0.0.1 -p <port> [--tls --cacert ca.crt [--cert client.crt --key
 * client.key]] [--user u --pass p | -a pass] --no-auth-warning --raw <cmd> <args...>, where the
 * arguments are the NULL-terminated list of strings after cmd (passed as argv, no shell).
 * --cacert is the CA that issued the server's certificate (other-ca.crt for "other-server"),
 * so the cli (and the readiness probe) also works against a server whose cert the tests'
 * clients must refuse. --cert/--key (<cert_set>client.crt/.key) only when tls_auth_clients.
 * Credentials are acl_user/acl_pass when set, else requirepass. Standard output goes to out
 * (NUL-terminated, truncated to outlen, trailing newlines removed; out may be NULL when outlen
 * is 0); standard error is passed through to the test's stderr. Returns redis-cli's exit status
 * (0 ok; note that redis-cli 7.0 exits 0 on most error replies, and prints them to stdout with
 * --raw, e.g. "ERR ..."), 128 + signal if it died, -1 if it could not be run or took more than
 * 30 s (then it is killed). Example: tp_test_redis_cli(&srv, buf, sizeof buf, "GET", "k", NULL) */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((sentinel))
#endif
int tp_test_redis_cli(tp_test_redis_t *r, char *out, size_t outlen, const char *cmd, ...);

/* tp_test_redis_cli() with up to three arguments (a NULL ends them early); returns the output,
 * in a buffer of its own that the next call overwrites. For checks: tp_test_cli(&srv, "GET",
 * "k", NULL). */
const char *tp_test_cli(tp_test_redis_t *r, const char *a, const char *b, const char *c);

/* tp_test_redis_cli() with the arguments as an array of nargs strings. */
int tp_test_redis_cliv(tp_test_redis_t *r, char *out, size_t outlen, const char *const *args,
                       size_t nargs);

/* Writes TP_TEST_CERTS_DIR "/" name into buf and returns buf, e.g. tp_test_cert("ca.crt", ...). */
const char *tp_test_cert(const char *name, char *buf, size_t len);

#endif
