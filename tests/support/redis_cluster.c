/* Test fixture: a real Redis Cluster on loopback (see redis_cluster.h). */
#define _GNU_SOURCE

#include "redis_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX 65536

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A loopback port free a moment ago: the cluster bus port (the client port + 10000 may not
 * exist for a port the kernel picked). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Over TLS the bus and replication links authenticate both ends, and a node connects with
 * its client certificate (the server one is for serverAuth only). */
static int start_node(tp_test_redis_t *n, bool tls, bool aof) {
    char conf[2048], tls_conf[640] = "", cert[400], key[400];
    if (tls)
        snprintf(tls_conf, sizeof tls_conf,
                 "tls-cluster yes\ntls-replication yes\n"
                 "tls-client-cert-file %s\ntls-client-key-file %s\n",
                 tp_test_cert("client.crt", cert, sizeof cert),
                 tp_test_cert("client.key", key, sizeof key));
    snprintf(conf, sizeof conf,
             "cluster-enabled yes\n"
             "cluster-config-file nodes.conf\n"
             "cluster-node-timeout 1000\n"
             "cluster-port %d\n"
             "cluster-replica-validity-factor 0\n"
             "shutdown-timeout 0\n"
             "%s%s",
             free_port(), tls_conf, aof ? "appendonly yes\nappendfsync always\n" : "");
    tp_test_redis_opts_t o = {.tls = tls, .extra_conf = conf};
    return tp_test_redis_start(n, &o);
}

int tp_test_cluster_wait_ok(tp_test_cluster_t *c, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    char out[4096];
    for (;;) {
        int ok = 0, running = 0;
        for (int i = 0; i < c->count; i++) {
            if (c->nodes[i].pid == 0)
                continue;
            running++;
            if (tp_test_redis_cli(&c->nodes[i], out, sizeof out, "CLUSTER", "INFO", NULL) == 0 &&
                strstr(out, "cluster_state:ok") && strstr(out, "cluster_slots_ok:16384"))
                ok++;
        }
        if (ok == running)
            return 0;
        if (now_ms() > deadline) {
            fprintf(stderr, "tp_test_cluster: %d of %d nodes report cluster_state:ok\n", ok,
                    running);
            return -1;
        }
        sleep_ms(100);
    }
}

/* Until every master has its replicas online (synchronised): WAIT counts only those. */
static int wait_replicas(tp_test_cluster_t *c, int replicas, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    char out[4096];
    for (int m = 0; m < c->masters; m++) {
        for (;;) {
            int online = 0;
            if (tp_test_redis_cli(&c->nodes[m], out, sizeof out, "INFO", "replication", NULL) == 0)
                for (const char *p = out; (p = strstr(p, "state=online")) != NULL; p++)
                    online++;
            if (online >= replicas)
                break;
            if (now_ms() > deadline) {
                fprintf(stderr, "tp_test_cluster: master %d has %d of %d replicas online\n", m,
                        online, replicas);
                return -1;
            }
            sleep_ms(50);
        }
    }
    return 0;
}

static int start(tp_test_cluster_t *c, int masters, int replicas, bool tls, bool aof) {
    memset(c, 0, sizeof *c);
    c->masters = masters;
    c->tls = tls;
    int total = masters * (1 + replicas);
    if (masters < 3 || total > TP_TEST_CLUSTER_MAX) {
        fprintf(stderr, "tp_test_cluster: 3 to %d nodes, masters first\n", TP_TEST_CLUSTER_MAX);
        return -1;
    }
    for (; c->count < total; c->count++)
        if (start_node(&c->nodes[c->count], tls, aof) != 0) {
            tp_test_cluster_stop(c);
            return -1;
        }
    /* redis-cli makes the first `masters` nodes masters and the rest their replicas. */
    const char *args[4 + TP_TEST_CLUSTER_MAX + 3];
    char hosts[TP_TEST_CLUSTER_MAX][32], nrep[8], out[OUT_MAX];
    size_t n = 0;
    args[n++] = "--cluster";
    args[n++] = "create";
    for (int i = 0; i < total; i++) {
        snprintf(hosts[i], sizeof hosts[i], "127.0.0.1:%d", c->nodes[i].port);
        args[n++] = hosts[i];
    }
    snprintf(nrep, sizeof nrep, "%d", replicas);
    args[n++] = "--cluster-replicas";
    args[n++] = nrep;
    args[n++] = "--cluster-yes";
    int rc = tp_test_redis_cliv(&c->nodes[0], out, sizeof out, args, n);
    if (rc != 0 || !strstr(out, "[OK] All 16384 slots covered")) {
        fprintf(stderr, "tp_test_cluster: redis-cli --cluster create failed (%d):\n%s\n", rc, out);
        tp_test_cluster_stop(c);
        return -1;
    }
    if (tp_test_cluster_wait_ok(c, 30000) != 0 || wait_replicas(c, replicas, 30000) != 0) {
        tp_test_cluster_stop(c);
        return -1;
    }
    return 0;
}

int tp_test_cluster_start(tp_test_cluster_t *c, int masters, int replicas, bool tls) {
    return start(c, masters, replicas, tls, false);
}

int tp_test_cluster_start_aof(tp_test_cluster_t *c, int masters, int replicas, bool tls) {
    return start(c, masters, replicas, tls, true);
}

void tp_test_cluster_stop(tp_test_cluster_t *c) {
    for (int i = 0; i < c->count; i++)
        tp_test_redis_stop(&c->nodes[i]);
    c->count = 0;
}

const char *tp_test_cluster_seeds(const tp_test_cluster_t *c, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->count && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s127.0.0.1:%d", i ? "," : "", c->nodes[i].port);
    return buf;
}

/* The slot ranges in the "myself" line of CLUSTER NODES on node i: does it serve slot? */
static bool serves(tp_test_redis_t *node, unsigned slot) {
    char *out = malloc(OUT_MAX);
    bool yes = false;
    if (out && tp_test_redis_cli(node, out, OUT_MAX, "CLUSTER", "NODES", NULL) == 0) {
        for (char *line = strtok(out, "\n"); line && !yes; line = strtok(NULL, "\n")) {
            if (!strstr(line, "myself") || !strstr(line, "master"))
                continue;
            char *save, *tok = strtok_r(line, " ", &save);
            for (int field = 0; tok && !yes; tok = strtok_r(NULL, " ", &save), field++) {
                unsigned lo, hi;
                if (field < 8 || tok[0] == '[')
                    continue;
                int got = sscanf(tok, "%u-%u", &lo, &hi);
                yes = (got == 1 && lo == slot) || (got == 2 && lo <= slot && slot <= hi);
            }
            break;
        }
    }
    free(out);
    return yes;
}

int tp_test_cluster_owner(tp_test_cluster_t *c, unsigned slot) {
    for (int i = 0; i < c->count; i++)
        if (c->nodes[i].pid != 0 && serves(&c->nodes[i], slot))
            return i;
    return -1;
}

static int node_id(tp_test_redis_t *n, char *id, size_t len) {
    return tp_test_redis_cli(n, id, len, "CLUSTER", "MYID", NULL) == 0 && strlen(id) == 40 ? 0 : -1;
}

static int cli_ok(tp_test_redis_t *n, const char *const *args, size_t nargs) {
    char out[1024];
    int rc = tp_test_redis_cliv(n, out, sizeof out, args, nargs);
    if (rc != 0 || strncmp(out, "OK", 2) != 0) {
        fprintf(stderr, "tp_test_cluster: %s %s ... -> %d %s\n", args[0], args[1], rc, out);
        return -1;
    }
    return 0;
}

/* MIGRATEs the slot's keys one at a time, until none is left on `from`: between two, a client
 * meets the slot split (ASK for one key, TRYAGAIN for a command on two). */
static int migrate_keys(tp_test_cluster_t *c, unsigned slot, int from, int to) {
    char sl[16], *out = malloc(OUT_MAX);
    snprintf(sl, sizeof sl, "%u", slot);
    int rc = out ? 0 : -1;
    while (rc == 0) {
        const char *get[] = {"CLUSTER", "GETKEYSINSLOT", sl, "1"};
        if (tp_test_redis_cliv(&c->nodes[from], out, OUT_MAX, get, 4) != 0) {
            rc = -1;
            break;
        }
        char *key = strtok(out, "\n");
        if (key == NULL)
            break;
        rc = tp_test_cluster_migrate_key(c, key, from, to);
    }
    free(out);
    return rc;
}

int tp_test_cluster_finish_slot(tp_test_cluster_t *c, unsigned slot, int to) {
    char id[64], sl[16];
    snprintf(sl, sizeof sl, "%u", slot);
    if (node_id(&c->nodes[to], id, sizeof id) != 0)
        return -1;
    const char *args[] = {"CLUSTER", "SETSLOT", sl, "NODE", id};
    /* The target first, as redis-cli does: it must own the slot before the source lets go. */
    if (cli_ok(&c->nodes[to], args, 5) != 0)
        return -1;
    /* Then every other node; replicas refuse SETSLOT and learn it from their masters. */
    char out[256];
    for (int i = 0; i < c->count; i++)
        if (i != to && c->nodes[i].pid != 0)
            tp_test_redis_cliv(&c->nodes[i], out, sizeof out, args, 5);
    return 0;
}

int tp_test_cluster_begin_move(tp_test_cluster_t *c, unsigned slot, int from, int to) {
    char from_id[64], to_id[64], sl[16];
    snprintf(sl, sizeof sl, "%u", slot);
    if (node_id(&c->nodes[from], from_id, sizeof from_id) != 0 ||
        node_id(&c->nodes[to], to_id, sizeof to_id) != 0)
        return -1;
    const char *imp[] = {"CLUSTER", "SETSLOT", sl, "IMPORTING", from_id};
    const char *mig[] = {"CLUSTER", "SETSLOT", sl, "MIGRATING", to_id};
    return cli_ok(&c->nodes[to], imp, 5) == 0 && cli_ok(&c->nodes[from], mig, 5) == 0 ? 0 : -1;
}

int tp_test_cluster_migrate_key(tp_test_cluster_t *c, const char *key, int from, int to) {
    char port[16];
    snprintf(port, sizeof port, "%d", c->nodes[to].port);
    const char *args[] = {"MIGRATE", "127.0.0.1", port, key, "0", "5000"};
    return cli_ok(&c->nodes[from], args, 6);
}

int tp_test_cluster_move_slot(tp_test_cluster_t *c, unsigned slot, int from, int to, bool finish) {
    if (tp_test_cluster_begin_move(c, slot, from, to) != 0 || migrate_keys(c, slot, from, to) != 0)
        return -1;
    return finish ? tp_test_cluster_finish_slot(c, slot, to) : 0;
}
