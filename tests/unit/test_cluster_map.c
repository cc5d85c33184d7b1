/* Unit tests of the Redis Cluster slot map (core/src/cluster_map.h): CLUSTER SHARDS and CLUSTER
 * SLOTS parsing, the slot map's lookups and updates, and MOVED / ASK classification.
 *
 * The replies in tests/unit/cluster/ are raw RESP captured from a 3-master, 3-replica
 * redis-server 7.0.15 cluster (127.0.0.1:37101-37106, cluster-announce-hostname
 * node<port>.example), read through core's own reply reader:
 *   shards.resp, slots.resp              cluster-preferred-endpoint-type ip
 *   shards_host.resp, slots_host.resp    ... hostname
 *   shards_unk.resp, slots_unk.resp      ... unknown-endpoint
 *   shards_fail.resp                     37103 (slots 10923-16383) killed and marked failed
 *   shards_failover.resp                 after its replica 37106 took over
 * The same cluster answered "MOVED 12182 node37103.example:37103" with hostname endpoints and
 * "MOVED 12182 :37103" with unknown-endpoint; both are cases below. Smaller or malformed
 * replies are written in a compact notation (see R()). */
#include "cluster_map.h"
#include "reply.h"
#include "tp/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- replies --------------------------------------------------------------------------- */

static tp__arena_t arena;
static redisReader *reader;

static void teardown(void) {
    tp__reader_free(reader);
    reader = NULL;
    tp__arena_free(&arena);
}

/* A captured reply, parsed by core's reader. Valid until the test ends. */
static tp_reply_t *load(const char *name) {
    char path[512], buf[8192];
    snprintf(path, sizeof(path), "%s/%s", TP_CLUSTER_FIXTURES, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "cannot open %s", path);
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (reader == NULL)
        reader = tp__reader_new(&arena);
    void *reply = NULL;
    cr_assert_eq(redisReaderFeed(reader, buf, n), REDIS_OK);
    cr_assert_eq(redisReaderGetReply(reader, &reply), REDIS_OK);
    cr_assert(reply != NULL, "%s is not one whole reply", name);
    return reply;
}

/* The compact notation: "[ ... ]" an array, ":12" an integer (so a word cannot start with
 * ":"), "_" nil, "''" an empty string,
 * any other word a bulk string. */
static tp_reply_t objs[20000];
static tp_reply_t *kids[40000];
static char text[200000];
static size_t nobjs, nkids, ntext;

static tp_reply_t *parse_word(const char **s) {
    while (**s == ' ')
        (*s)++;
    tp_reply_t *r = &objs[nobjs++];
    cr_assert(nobjs < sizeof(objs) / sizeof(objs[0]));
    *r = (tp_reply_t){.type = TP_REPLY_ARRAY};
    if (**s == '[') {
        tp_reply_t *items[1100];
        size_t n = 0;
        for ((*s)++; *(*s += strspn(*s, " ")) != ']'; n++)
            items[n] = parse_word(s);
        (*s)++;
        r->element = &kids[nkids];
        r->elements = n;
        memcpy(r->element, items, n * sizeof(items[0]));
        nkids += n;
        return r;
    }
    size_t len = strcspn(*s, " ]");
    char *word = &text[ntext];
    memcpy(word, *s, len);
    word[len] = '\0';
    ntext += len + 1;
    *s += len;
    if (word[0] == ':')
        *r = (tp_reply_t){.type = TP_REPLY_INTEGER, .integer = strtoll(word + 1, NULL, 10)};
    else if (strcmp(word, "_") == 0)
        *r = (tp_reply_t){.type = TP_REPLY_NIL};
    else if (strcmp(word, "''") == 0)
        *r = (tp_reply_t){.type = TP_REPLY_STRING, .str = "", .len = 0};
    else
        *r = (tp_reply_t){.type = TP_REPLY_STRING, .str = word, .len = len};
    return r;
}

static tp_reply_t *R(const char *notation) {
    return parse_word(&notation);
}

/* Element i of an array, checked. */
static tp_reply_t *at(tp_reply_t *r, size_t i) {
    cr_assert(r->type == TP_REPLY_ARRAY && i < r->elements);
    return r->element[i];
}

/* The value of key in a RESP2 map. */
static tp_reply_t *field(tp_reply_t *map, const char *key) {
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (strcmp(map->element[i]->str, key) == 0)
            return map->element[i + 1];
    cr_assert_fail("no key %s", key);
    return NULL;
}

/* Node j of shard i in a SHARDS reply. */
static tp_reply_t *shard_node(tp_reply_t *shards, size_t i, size_t j) {
    return at(field(at(shards, i), "nodes"), j);
}

static void set_str(tp_reply_t *r, const char *s) {
    *r = (tp_reply_t){.type = TP_REPLY_STRING, .str = s, .len = strlen(s)};
}

/* ---- map checks ------------------------------------------------------------------------ */

static tp__cluster_map_t *map;
static char err[256];

static void setup(void) {
    map = tp__cluster_map_new();
    cr_assert(map != NULL);
}

static void fini(void) {
    tp__cluster_map_free(map);
    teardown();
}

TestSuite(cluster_map, .init = setup, .fini = fini);

static const tp__cluster_node_t *slot_node(unsigned slot) {
    return tp__cluster_map_node(map, tp__cluster_map_node_for_slot(map, slot));
}

static void assert_owner(unsigned first, unsigned last, const char *endpoint, unsigned port) {
    for (unsigned s = first; s <= last; s++) {
        const tp__cluster_node_t *n = slot_node(s);
        cr_assert(n != NULL, "slot %u has no node", s);
        cr_assert_str_eq(n->endpoint, endpoint, "slot %u", s);
        cr_assert_eq(n->connect_port, port, "slot %u", s);
    }
}

/* The three masters of the captured cluster, with their ranges. */
static void assert_three_masters(const char *endpoint) {
    assert_owner(0, 5460, endpoint, 37101);
    assert_owner(5461, 10922, endpoint, 37102);
    assert_owner(10923, 16383, endpoint, 37103);
    cr_assert_eq(tp__cluster_map_uncovered(map), 0);
}

/* A copy of everything a map shows, to prove a failed parse changed nothing. */
typedef struct {
    int slot[TP__CLUSTER_SLOTS];
    int nodes;
    unsigned uncovered;
    tp__cluster_node_t node[16];
} snapshot_t;

static void snap(snapshot_t *s) {
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < TP__CLUSTER_SLOTS; i++)
        s->slot[i] = tp__cluster_map_node_for_slot(map, i);
    s->nodes = tp__cluster_map_nodes(map);
    s->uncovered = tp__cluster_map_uncovered(map);
    for (int i = 0; i < s->nodes && i < 16; i++)
        memcpy(&s->node[i], tp__cluster_map_node(map, i), sizeof(s->node[i]));
}

static void assert_unchanged(const snapshot_t *before, const char *what) {
    snapshot_t *now = malloc(sizeof(*now));
    snap(now);
    cr_assert(memcmp(before, now, sizeof(*now)) == 0, "%s changed the map", what);
    free(now);
}

/* A parse that must fail with a message holding message, leaving the map as before. */
static void assert_rejected(int rc, const char *what, const char *message,
                            const snapshot_t *before) {
    cr_assert_eq(rc, TP_EPROTOCOL, "%s: accepted", what);
    cr_assert(strstr(err, message) != NULL, "%s: \"%s\"", what, err);
    assert_unchanged(before, what);
}

static int shards(tp_reply_t *r, bool tls) {
    return tp__cluster_parse_shards(map, r, tls, err, sizeof(err));
}

static int slots(tp_reply_t *r) {
    return tp__cluster_parse_slots(map, r, err, sizeof(err));
}

/* ---- CLUSTER SHARDS from a real cluster ------------------------------------------------ */

Test(cluster_map, empty_map_covers_nothing) {
    cr_assert_eq(tp__cluster_map_nodes(map), 0);
    cr_assert_eq(tp__cluster_map_uncovered(map), TP__CLUSTER_SLOTS);
    cr_assert_eq(tp__cluster_map_node_for_slot(map, 0), -1);
    cr_assert_eq(tp__cluster_map_node_for_slot(map, 16384), -1);
    cr_assert_null(tp__cluster_map_node(map, 0));
    cr_assert_null(tp__cluster_map_node(map, -1));
}

/* Three masters with one replica each: every field of the reply lands in the table. */
Test(cluster_map, shards_three_masters_three_replicas) {
    cr_assert_eq(shards(load("shards.resp"), false), 0, "%s", err);
    cr_assert_str_eq(err, "");
    cr_assert_eq(tp__cluster_map_nodes(map), 6);
    assert_three_masters("127.0.0.1");
    const tp__cluster_node_t *m = slot_node(0);
    cr_assert_str_eq(m->id, "e1f8fece99576d11258ea1dfd250735a255716af");
    cr_assert_str_eq(m->ip, "127.0.0.1");
    cr_assert_str_eq(m->hostname, "node37101.example");
    cr_assert_eq(m->port, 37101);
    cr_assert_eq(m->tls_port, 0);
    cr_assert_eq(m->role, TP__CLUSTER_MASTER);
    cr_assert_eq(m->health, TP__CLUSTER_ONLINE);
    cr_assert_eq(m->replicas, 1);
    cr_assert_eq(m->slots, 5461);
    cr_assert_eq(m->master, -1);
    int ri = tp__cluster_map_find_node(map, "127.0.0.1", 37104);
    const tp__cluster_node_t *r = tp__cluster_map_node(map, ri);
    cr_assert_not_null(r);
    cr_assert_eq(r->role, TP__CLUSTER_REPLICA);
    cr_assert_eq(r->master, tp__cluster_map_node_for_slot(map, 0));
    cr_assert_eq(r->slots, 0);
}

/* cluster-preferred-endpoint-type hostname: the endpoint is the announced hostname. */
Test(cluster_map, shards_hostname_endpoints) {
    cr_assert_eq(shards(load("shards_host.resp"), false), 0, "%s", err);
    assert_owner(0, 5460, "node37101.example", 37101);
    assert_owner(10923, 16383, "node37103.example", 37103);
    cr_assert_str_eq(slot_node(0)->ip, "127.0.0.1");
    /* A MOVED names the hostname; the ip finds the same node. */
    int n = tp__cluster_map_find_node(map, "NODE37103.example", 37103);
    cr_assert_eq(n, tp__cluster_map_node_for_slot(map, 16383));
    cr_assert_eq(tp__cluster_map_find_node(map, "127.0.0.1", 37103), n);
    cr_assert_eq(tp__cluster_map_find_node(map, "node37103.example", 37101), -1);
}

/* unknown-endpoint: "" everywhere, which means "where this reply came from": every slot is
 * covered, each master at its own port, and the router fills in the host. */
Test(cluster_map, shards_unknown_endpoints_mean_the_same_host) {
    cr_assert_eq(shards(load("shards_unk.resp"), false), 0, "%s", err);
    assert_three_masters("");
}

/* A failed master keeps its place in the table but serves nothing. */
Test(cluster_map, shards_failed_master_leaves_its_slots_uncovered) {
    cr_assert_eq(shards(load("shards_fail.resp"), false), 5461);
    cr_assert(strstr(err, "slots 10923-16383: the master is not online") != NULL, "%s", err);
    assert_owner(0, 5460, "127.0.0.1", 37101);
    assert_owner(5461, 10922, "127.0.0.1", 37102);
    cr_assert_eq(tp__cluster_map_node_for_slot(map, 16383), -1);
    const tp__cluster_node_t *dead =
        tp__cluster_map_node(map, tp__cluster_map_find_node(map, "127.0.0.1", 37103));
    cr_assert_eq(dead->health, TP__CLUSTER_FAIL);
    cr_assert_eq(dead->slots, 0);
    cr_assert_eq(tp__cluster_map_uncovered(map), 5461);
}

/* After the failover the replica is master, and the old master a shard without slots. */
Test(cluster_map, shards_after_failover) {
    cr_assert_eq(shards(load("shards_failover.resp"), false), 0, "%s", err);
    assert_owner(10923, 16383, "127.0.0.1", 37106);
    const tp__cluster_node_t *old =
        tp__cluster_map_node(map, tp__cluster_map_find_node(map, "127.0.0.1", 37103));
    cr_assert_eq(old->role, TP__CLUSTER_MASTER);
    cr_assert_eq(old->health, TP__CLUSTER_FAIL);
    cr_assert_eq(old->replicas, 0);
}

/* A new topology replaces the old one whole: a refresh after the failover moves the slots. */
Test(cluster_map, refresh_replaces_the_topology) {
    cr_assert_eq(shards(load("shards.resp"), false), 0);
    assert_owner(10923, 16383, "127.0.0.1", 37103);
    cr_assert_eq(shards(load("shards_failover.resp"), false), 0);
    assert_owner(10923, 16383, "127.0.0.1", 37106);
    cr_assert_eq(tp__cluster_map_nodes(map), 6);
}

/* ---- CLUSTER SHARDS written here ------------------------------------------------------- */

#define ID(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define IDA ID("a")
#define IDB ID("b")
#define IDC ID("c")

/* A node of a TLS cluster (tls-cluster yes): both ports. */
#define TLS_NODE(id, port, tls, role)                                                              \
    "[ id " id " port :" #port " tls-port :" #tls " ip 10.0.0.1 endpoint 10.0.0.1 role " role      \
    " replication-offset :7 health online ]"

Test(cluster_map, shards_tls_port_when_preferred) {
    const char *reply = "[ [ slots [ :0 :16383 ] nodes [ " TLS_NODE(
        IDA, 6379, 6380, "master") " " TLS_NODE(IDB, 6381, 6382, "replica") " ] ] ]";
    cr_assert_eq(shards(R(reply), true), 0, "%s", err);
    cr_assert_eq(slot_node(0)->connect_port, 6380);
    cr_assert_eq(slot_node(0)->port, 6379);
    cr_assert_eq(slot_node(0)->tls_port, 6380);
    cr_assert_eq(tp__cluster_map_find_node(map, "10.0.0.1", 6379), 0);
    cr_assert_eq(tp__cluster_map_find_node(map, "10.0.0.1", 6380), 0);
    cr_assert_eq(shards(R(reply), false), 0, "%s", err);
    cr_assert_eq(slot_node(16383)->connect_port, 6379);
}

/* A TLS-only node (port 0 is left out of the reply) cannot serve a plaintext client. */
Test(cluster_map, shards_tls_only_node_for_plaintext_is_left_out) {
    const char *reply = "[ [ slots [ :0 :16383 ] nodes [ [ id " IDA " tls-port :6380 ip fe80::1 "
                        "endpoint fe80::1 role master health online ] ] ] ]";
    cr_assert_eq(shards(R(reply), false), TP__CLUSTER_SLOTS, "%s", err);
    cr_assert(strstr(err, "no plaintext port") != NULL, "%s", err);
    cr_assert_eq(shards(R(reply), true), 0, "%s", err);
    assert_owner(0, 16383, "fe80::1", 6380);
}

#define NODE(id, port, endpoint, role, health)                                                     \
    "[ id " id " port :" #port " ip 10.0.0.1 endpoint " endpoint " role " role " health " health   \
    " ]"

/* "?" is a hostname endpoint on a node without a hostname: its shard's slots stay uncovered,
 * the other shards are served, and the replica of the unreachable master has no master. */
Test(cluster_map, shards_question_mark_endpoint) {
    const char *reply =
        "[ [ slots [ :0 :99 ] nodes [ " NODE(IDA, 1, "?", "master", "online") " " NODE(
            IDC, 3, "c.example", "replica",
            "online") " ] ] [ slots [ :100 :16383 ] nodes [ " NODE(IDB, 2, "b.example", "master",
                                                                   "online") " ] ] ]";
    cr_assert_eq(shards(R(reply), false), 100);
    cr_assert(strstr(err, "has no known endpoint") != NULL, "%s", err);
    cr_assert_eq(tp__cluster_map_node_for_slot(map, 99), -1);
    assert_owner(100, 16383, "b.example", 2);
    const tp__cluster_node_t *c =
        tp__cluster_map_node(map, tp__cluster_map_find_node(map, "c.example", 3));
    cr_assert_eq(c->master, -1);
}

/* Resharding or CLUSTERDOWN: slots nobody claims, a shard without a master, a loading one. */
Test(cluster_map, shards_uncovered_slots_are_counted) {
    const char *reply = "[ [ slots [ :0 :99 :200 :299 ] nodes [ " NODE(
        IDA, 1, "a", "master",
        "online") " ] ] [ slots [ :300 :399 ] nodes [ " NODE(IDB, 2, "b", "replica",
                                                             "online") " ] ] [ slots [ :400 :400 ] "
                                                                       "nodes [ " NODE(
                                                                           IDC, 3, "c", "master",
                                                                           "loading") " ] ] ]";
    cr_assert_eq(shards(R(reply), false), TP__CLUSTER_SLOTS - 200);
    cr_assert(strstr(err, "shard 1: slots 300-399: no master") != NULL, "%s", err);
    assert_owner(0, 99, "a", 1);
    assert_owner(200, 299, "a", 1);
    cr_assert_eq(tp__cluster_map_node_for_slot(map, 150), -1);
    cr_assert_eq(tp__cluster_map_node_for_slot(map, 400), -1);
    cr_assert_eq(slot_node(0)->slots, 200);
    cr_assert_eq(tp__cluster_map_uncovered(map), TP__CLUSTER_SLOTS - 200);
}

Test(cluster_map, shards_empty_reply_is_an_empty_cluster) {
    cr_assert_eq(shards(R("[ ]"), false), TP__CLUSTER_SLOTS);
    cr_assert_eq(tp__cluster_map_nodes(map), 0);
}

/* Keys Redis may add later are skipped. */
Test(cluster_map, shards_unknown_keys_are_ignored) {
    const char *reply = "[ [ future [ :1 ] slots [ :0 :16383 ] nodes [ [ id " IDA " port :1 "
                        "ip a endpoint a role master health online shard-id x ] ] ] ]";
    cr_assert_eq(shards(R(reply), false), 0, "%s", err);
}

/* ---- malformed CLUSTER SHARDS: a clear error, and the map as it was ------------------- */

typedef struct {
    const char *what;
    void (*mutate)(tp_reply_t *r);
    const char *message; /* a part of the expected error */
} bad_case_t;

static void top_not_array(tp_reply_t *r) {
    set_str(r, "x");
}
static void shard_not_map(tp_reply_t *r) {
    at(r, 1)->elements = 3;
}
static void shard_key_integer(tp_reply_t *r) {
    *at(at(r, 0), 0) = (tp_reply_t){.type = TP_REPLY_INTEGER};
}
static void slots_missing(tp_reply_t *r) {
    set_str(at(at(r, 2), 0), "slotz");
}
static void slots_odd(tp_reply_t *r) {
    field(at(r, 0), "slots")->elements = 1;
}
static void slot_string(tp_reply_t *r) {
    set_str(at(field(at(r, 0), "slots"), 0), "0");
}
static void slot_too_big(tp_reply_t *r) {
    at(field(at(r, 2), "slots"), 1)->integer = 16384;
}
static void slot_negative(tp_reply_t *r) {
    at(field(at(r, 0), "slots"), 0)->integer = -1;
}
static void start_after_end(tp_reply_t *r) {
    at(field(at(r, 1), "slots"), 0)->integer = 10923;
}
static void overlap(tp_reply_t *r) {
    at(field(at(r, 1), "slots"), 0)->integer = 5460;
}
static void nodes_not_array(tp_reply_t *r) {
    *field(at(r, 1), "nodes") = (tp_reply_t){.type = TP_REPLY_NIL};
}
static void node_nil(tp_reply_t *r) {
    *shard_node(r, 0, 1) = (tp_reply_t){.type = TP_REPLY_NIL};
}
static void port_zero(tp_reply_t *r) {
    field(shard_node(r, 0, 0), "port")->integer = 0;
}
static void port_too_big(tp_reply_t *r) {
    field(shard_node(r, 1, 1), "port")->integer = 65536;
}
static void port_string(tp_reply_t *r) {
    set_str(field(shard_node(r, 0, 0), "port"), "6379");
}
static void id_short(tp_reply_t *r) {
    field(shard_node(r, 0, 0), "id")->len = 39;
}
static void id_not_hex(tp_reply_t *r) {
    set_str(field(shard_node(r, 0, 0), "id"), ID("g"));
}
static void id_missing(tp_reply_t *r) {
    set_str(at(shard_node(r, 0, 0), 0), "idx");
}
static void health_missing(tp_reply_t *r) {
    set_str(at(shard_node(r, 2, 0), 14), "healthy");
}
static void role_unknown(tp_reply_t *r) {
    set_str(field(shard_node(r, 0, 0), "role"), "primary");
}
static void two_masters(tp_reply_t *r) {
    set_str(field(shard_node(r, 0, 1), "role"), "master");
}
static void duplicate_node(tp_reply_t *r) {
    *field(shard_node(r, 1, 0), "id") = *field(shard_node(r, 0, 0), "id");
}
static void hostname_long(tp_reply_t *r) {
    static char name[300];
    memset(name, 'h', sizeof(name) - 1);
    set_str(field(shard_node(r, 0, 0), "hostname"), name);
}
static void endpoint_space(tp_reply_t *r) {
    set_str(field(shard_node(r, 0, 0), "endpoint"), "127.0.0.1 x");
}
static void endpoint_nul(tp_reply_t *r) {
    field(shard_node(r, 0, 0), "endpoint")->len = 10; /* the terminating NUL inside */
}
static void ip_integer(tp_reply_t *r) {
    *field(shard_node(r, 0, 0), "ip") = (tp_reply_t){.type = TP_REPLY_INTEGER};
}
static void offset_string(tp_reply_t *r) {
    set_str(field(shard_node(r, 0, 0), "replication-offset"), "14");
}

static const bad_case_t bad_shards[] = {
    {"reply not an array", top_not_array, "CLUSTER SHARDS reply is not an array"},
    {"odd shard map", shard_not_map, "shard 1: shard is not an array of key/value pairs"},
    {"shard key integer", shard_key_integer, "shard 0: shard has a key that is not a string"},
    {"no slots", slots_missing, "shard 2: \"slots\" is missing"},
    {"odd slots", slots_odd, "shard 0: \"slots\" is missing or not an array of start/end"},
    {"slot a string", slot_string, "shard 0: \"slot\" is not an integer"},
    {"slot 16384", slot_too_big, "shard 2: \"slot\" 16384 is outside 0..16383"},
    {"slot -1", slot_negative, "\"slot\" -1 is outside 0..16383"},
    {"start after end", start_after_end, "shard 1: slot range 10923-10922 starts after it ends"},
    {"overlap", overlap, "shard 1: slot 5460 is claimed by two masters"},
    {"nodes nil", nodes_not_array, "shard 1: \"nodes\" is missing or not an array"},
    {"node nil", node_nil, "shard 0 node 1: node is not an array of key/value pairs"},
    {"port 0", port_zero, "shard 0 node 0: \"port\" 0 is outside 1..65535"},
    {"port 65536", port_too_big, "shard 1 node 1: \"port\" 65536 is outside 1..65535"},
    {"port a string", port_string, "\"port\" is not an integer"},
    {"id short", id_short, "node id is not 40 hex digits"},
    {"id not hex", id_not_hex, "node id is not 40 hex digits"},
    {"id missing", id_missing, "shard 0 node 0: node has no \"id\""},
    {"health missing", health_missing, "shard 2 node 0: node has no \"health\""},
    {"role unknown", role_unknown, "\"role\" is neither \"master\" nor \"replica\""},
    {"two masters", two_masters, "shard 0 node 1: shard has two masters"},
    {"duplicate", duplicate_node,
     "shard 1 node 0: node e1f8fece99576d11258ea1dfd250735a255716af "
     "is listed twice"},
    {"hostname 299 bytes", hostname_long, "\"hostname\" is longer than 255 bytes"},
    {"endpoint with a space", endpoint_space, "\"endpoint\" is longer than 255 bytes or has"},
    {"endpoint with a NUL", endpoint_nul, "has spaces or control bytes"},
    {"ip an integer", ip_integer, "\"ip\" is not a string"},
    {"offset a string", offset_string, "\"replication-offset\" is not an integer"},
};

Test(cluster_map, shards_malformed_leave_the_map_unchanged) {
    snapshot_t *before = malloc(sizeof(*before));
    cr_assert_eq(shards(load("shards_failover.resp"), false), 0);
    snap(before);
    for (size_t i = 0; i < sizeof(bad_shards) / sizeof(bad_shards[0]); i++) {
        const bad_case_t *c = &bad_shards[i];
        tp_reply_t *r = load("shards.resp");
        c->mutate(r);
        assert_rejected(shards(r, false), c->what, c->message, before);
    }
    /* And the untouched reply still parses. */
    cr_assert_eq(shards(load("shards.resp"), false), 0);
    free(before);
}

enum { MANY = TP__CLUSTER_MAX_NODES + 1, NODE_KV = 12 };

/* Shard i of MANY: no slots, one master with its own id and port, built in place. */
static tp_reply_t *many_shard(int i) {
    static tp_reply_t shard[MANY], kv[MANY][4], node[MANY], nkv[MANY][NODE_KV];
    static tp_reply_t *skv[MANY][4], *nodes[MANY][1], *nkvp[MANY][NODE_KV];
    static char ids[MANY][41];
    static const char *keys[] = {"id", "port", "ip", "endpoint", "role", "health"};
    const char *vals[] = {ids[i], NULL, "h", "h", "master", "online"};
    snprintf(ids[i], sizeof(ids[i]), "%040x", (unsigned)i);
    for (int k = 0; k < NODE_KV / 2; k++) {
        set_str(&nkv[i][2 * k], keys[k]);
        if (vals[k])
            set_str(&nkv[i][2 * k + 1], vals[k]);
        else
            nkv[i][2 * k + 1] = (tp_reply_t){.type = TP_REPLY_INTEGER, .integer = 1 + i};
    }
    for (int k = 0; k < NODE_KV; k++)
        nkvp[i][k] = &nkv[i][k];
    node[i] = (tp_reply_t){.type = TP_REPLY_ARRAY, .elements = NODE_KV, .element = nkvp[i]};
    set_str(&kv[i][0], "slots");
    kv[i][1] = (tp_reply_t){.type = TP_REPLY_ARRAY};
    set_str(&kv[i][2], "nodes");
    nodes[i][0] = &node[i];
    kv[i][3] = (tp_reply_t){.type = TP_REPLY_ARRAY, .elements = 1, .element = nodes[i]};
    for (int k = 0; k < 4; k++)
        skv[i][k] = &kv[i][k];
    shard[i] = (tp_reply_t){.type = TP_REPLY_ARRAY, .elements = 4, .element = skv[i]};
    return &shard[i];
}

/* One node more than the table holds. */
Test(cluster_map, shards_too_many_nodes) {
    static tp_reply_t *top[MANY];
    for (int i = 0; i < MANY; i++)
        top[i] = many_shard(i);
    tp_reply_t reply = {.type = TP_REPLY_ARRAY, .elements = MANY - 1, .element = top};
    cr_assert_eq(shards(&reply, false), TP__CLUSTER_SLOTS, "%s", err);
    cr_assert_eq(tp__cluster_map_nodes(map), TP__CLUSTER_MAX_NODES);
    reply.elements = MANY;
    cr_assert_eq(shards(&reply, false), TP_EPROTOCOL);
    cr_assert(strstr(err, "shard 1024 node 0: more than 1024 nodes") != NULL, "%s", err);
    cr_assert_eq(tp__cluster_map_nodes(map), TP__CLUSTER_MAX_NODES);
    /* Nothing is left for a MOVED to an unknown node either. */
    cr_assert_eq(tp__cluster_map_add_node(map, "new", 1), TP_EPROTOCOL);
}

/* ---- CLUSTER SLOTS --------------------------------------------------------------------- */

Test(cluster_map, slots_with_metadata) {
    cr_assert_eq(slots(load("slots.resp")), 0, "%s", err);
    assert_three_masters("127.0.0.1");
    cr_assert_eq(tp__cluster_map_nodes(map), 6);
    const tp__cluster_node_t *m = slot_node(0);
    cr_assert_str_eq(m->id, "e1f8fece99576d11258ea1dfd250735a255716af");
    cr_assert_str_eq(m->hostname, "node37101.example");
    cr_assert_str_eq(m->ip, "127.0.0.1");
    cr_assert_eq(m->replicas, 1);
    cr_assert_eq(m->health, TP__CLUSTER_ONLINE);
}

Test(cluster_map, slots_hostname_endpoints) {
    cr_assert_eq(slots(load("slots_host.resp")), 0, "%s", err);
    assert_owner(5461, 10922, "node37102.example", 37102);
    cr_assert_str_eq(slot_node(5461)->ip, "127.0.0.1");
    cr_assert_str_eq(slot_node(5461)->hostname, "node37102.example");
}

/* NIL endpoints (unknown-endpoint) are the host the reply came from, as "" in SHARDS. */
Test(cluster_map, slots_nil_endpoints) {
    cr_assert_eq(slots(load("slots_unk.resp")), 0, "%s", err);
    assert_three_masters("");
}

/* Before Redis 7 a node was [ip, port, id]; before 3.2, [ip, port]. A master with two ranges
 * is one node, and its replica is counted once. */
Test(cluster_map, slots_without_metadata_or_id) {
    const char *reply = "[ [ :0 :99 [ 10.0.0.1 :7000 " IDA " ] [ 10.0.0.2 :7001 " IDB " ] ] "
                        "[ :200 :16383 [ 10.0.0.1 :7000 " IDA " ] [ 10.0.0.2 :7001 " IDB " ] ] "
                        "[ :100 :199 [ 10.0.0.3 :7002 ] [ ? :7003 ] ] ]";
    cr_assert_eq(slots(R(reply)), 0, "%s", err);
    cr_assert_eq(tp__cluster_map_nodes(map), 3);
    assert_owner(0, 99, "10.0.0.1", 7000);
    assert_owner(200, 16383, "10.0.0.1", 7000);
    assert_owner(100, 199, "10.0.0.3", 7002);
    cr_assert_eq(slot_node(0)->replicas, 1);
    cr_assert_eq(slot_node(0)->slots, TP__CLUSTER_SLOTS - 100);
    cr_assert_str_eq(slot_node(100)->id, "");
    cr_assert_str_eq(slot_node(100)->ip, "10.0.0.3");
    cr_assert(strstr(err, "node ?:7003 has no known endpoint") != NULL, "%s", err);
}

Test(cluster_map, slots_malformed_leave_the_map_unchanged) {
    static const struct {
        const char *reply, *message;
    } bad[] = {
        {"x", "CLUSTER SLOTS reply is not an array"},
        {"[ [ :0 :1 ] ]", "range 0: range is not an array of start, end and master"},
        {"[ [ :5 :1 [ a :1 ] ] ]", "range 0: slot range 5-1 starts after it ends"},
        {"[ [ :0 :16384 [ a :1 ] ] ]", "\"slot\" 16384 is outside 0..16383"},
        {"[ [ :0 :1 [ a 1 ] ] ]", "\"port\" is not an integer"},
        {"[ [ :0 :1 [ a ] ] ]", "node is not an array of endpoint and port"},
        {"[ [ :0 :1 [ :1 :1 ] ] ]", "\"endpoint\" is not a string"},
        {"[ [ :0 :1 [ a :1 xyz ] ] ]", "node id is not 40 hex digits"},
        {"[ [ :0 :1 [ a :1 " IDA " [ ip ] ] ] ]", "node metadata is not an array of key/value"},
        {"[ [ :0 :1 [ a :1 " IDA " [ hostname :1 ] ] ] ]", "\"hostname\" is not a string"},
        {"[ [ :0 :1 [ a :1 ] ] [ :1 :2 [ b :2 ] ] ]", "range 1: slot 1 is claimed by two"},
        {"[ [ :0 :1 [ a :1 ] [ b :2 ] ] [ :2 :3 [ b :2 ] ] ]",
         "range 1: node b:2 is both a master and a replica"},
    };
    snapshot_t *before = malloc(sizeof(*before));
    cr_assert_eq(slots(load("slots.resp")), 0);
    snap(before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_rejected(slots(R(bad[i].reply)), bad[i].reply, bad[i].message, before);
    }
    free(before);
}

/* ---- updates: MOVED ------------------------------------------------------------------- */

Test(cluster_map, moved_updates_one_slot) {
    cr_assert_eq(shards(load("shards.resp"), false), 0);
    int to = tp__cluster_map_find_node(map, "127.0.0.1", 37102);
    int from = tp__cluster_map_node_for_slot(map, 12182);
    cr_assert_eq(tp__cluster_map_set_slot(map, 12182, to), 0);
    cr_assert_eq(tp__cluster_map_node_for_slot(map, 12182), to);
    cr_assert_eq(tp__cluster_map_node(map, to)->slots, 5463);
    cr_assert_eq(tp__cluster_map_node(map, from)->slots, 5460);
    cr_assert_eq(tp__cluster_map_set_slot(map, 12182, -1), 0);
    cr_assert_eq(tp__cluster_map_uncovered(map), 1);
    cr_assert_eq(tp__cluster_map_set_slot(map, 12182, from), 0);
    cr_assert_eq(tp__cluster_map_uncovered(map), 0);
    cr_assert_eq(tp__cluster_map_set_slot(map, 16384, to), TP_EINVAL);
    cr_assert_eq(tp__cluster_map_set_slot(map, 0, 6), TP_EINVAL);
    cr_assert_eq(tp__cluster_map_set_slot(map, 0, -2), TP_EINVAL);
}

/* A MOVED to a node the last refresh did not know: it joins the table. */
Test(cluster_map, moved_to_an_unknown_node) {
    cr_assert_eq(shards(load("shards.resp"), false), 0);
    int n = tp__cluster_map_add_node(map, "10.9.9.9", 7000);
    cr_assert_eq(n, 6);
    cr_assert_eq(tp__cluster_map_add_node(map, "10.9.9.9", 7000), n);
    cr_assert_eq(tp__cluster_map_add_node(map, "127.0.0.1", 37101),
                 tp__cluster_map_node_for_slot(map, 0));
    cr_assert_eq(tp__cluster_map_set_slot(map, 3, n), 0);
    cr_assert_str_eq(slot_node(3)->endpoint, "10.9.9.9");
    cr_assert_eq(slot_node(3)->role, TP__CLUSTER_MASTER);
    cr_assert_str_eq(slot_node(3)->id, "");
    cr_assert_eq(tp__cluster_map_add_node(map, "", 7000), TP_EINVAL);
    cr_assert_eq(tp__cluster_map_add_node(map, "a b", 7000), TP_EINVAL);
    cr_assert_eq(tp__cluster_map_add_node(map, "a", 0), TP_EINVAL);
}

/* ---- redirects ------------------------------------------------------------------------ */

typedef struct {
    const char *err;
    int rc;
    tp__cluster_redirect_kind_t kind;
    unsigned slot;
    const char *host;
    unsigned port;
} redirect_case_t;

/* Errors that are no redirect, malformed redirects, and the other kinds. */
#define KIND(e, k)                                                                                 \
    { e, 0, k, 0, NULL, 0 }
#define NOT(e) KIND(e, TP__CLUSTER_NOT_REDIRECT)
#define BAD(e)                                                                                     \
    { e, TP_EPROTOCOL, TP__CLUSTER_NOT_REDIRECT, 0, NULL, 0 }

static const redirect_case_t redirects[] = {
    {"MOVED 3999 127.0.0.1:6381", 0, TP__CLUSTER_MOVED, 3999, "127.0.0.1", 6381},
    {"ASK 3999 127.0.0.1:6381", 0, TP__CLUSTER_ASK, 3999, "127.0.0.1", 6381},
    {"MOVED 12182 node37103.example:37103", 0, TP__CLUSTER_MOVED, 12182, "node37103.example",
     37103},
    {"MOVED 12182 :37103", 0, TP__CLUSTER_MOVED, 12182, "", 37103},
    {"MOVED 3999 ::1:6380", 0, TP__CLUSTER_MOVED, 3999, "::1", 6380},
    {"ASK 0 2001:db8::7:65535", 0, TP__CLUSTER_ASK, 0, "2001:db8::7", 65535},
    {"MOVED 16383 [::1]:6380", 0, TP__CLUSTER_MOVED, 16383, "::1", 6380},
    KIND("TRYAGAIN Multiple keys request during rehashing of slot", TP__CLUSTER_TRYAGAIN),
    KIND("CLUSTERDOWN The cluster is down", TP__CLUSTER_CLUSTERDOWN),
    KIND("CLUSTERDOWN Hash slot not served", TP__CLUSTER_CLUSTERDOWN),
    KIND("CLUSTERDOWN", TP__CLUSTER_CLUSTERDOWN),
    NOT("WRONGTYPE Operation against a key holding the wrong kind of value"),
    NOT("ERR unknown command"),
    NOT("MOVEDX 1 a:1"),
    NOT("moved 1 a:1"),
    NOT(""),
    BAD("MOVED 16384 a:1"),
    BAD("MOVED 99999999999999999999 a:1"),
    BAD("MOVED -1 a:1"),
    BAD("MOVED +1 a:1"),
    BAD("MOVED 1 a"),
    BAD("MOVED 1 a:"),
    BAD("MOVED 1 a:0"),
    BAD("MOVED 1 a:65536"),
    BAD("MOVED 1 a:6379 extra"),
    BAD("MOVED 1 a:6379x"),
    BAD("MOVED 1 a:6379\r\n"),
    BAD("MOVED 1 a b:6379"),
    BAD("MOVED 1  a:6379"),
    BAD("MOVED 1"),
    BAD("MOVED"),
    BAD("ASK "),
    BAD("ASK x a:1"),
};

Test(cluster_map, redirects) {
    for (size_t i = 0; i < sizeof(redirects) / sizeof(redirects[0]); i++) {
        const redirect_case_t *c = &redirects[i];
        tp__cluster_redirect_t out;
        memset(&out, 0x5a, sizeof(out));
        int rc = tp__cluster_parse_redirect(c->err, strlen(c->err), &out);
        cr_assert_eq(rc, c->rc, "\"%s\": rc %d", c->err, rc);
        cr_assert_eq(out.kind, c->kind, "\"%s\": kind %d", c->err, out.kind);
        cr_assert_eq(out.slot, c->slot, "\"%s\"", c->err);
        cr_assert_str_eq(out.host, c->host ? c->host : "", "\"%s\"", c->err);
        cr_assert_eq(out.port, c->port, "\"%s\"", c->err);
    }
}

/* Lengths, not NULs, bound the text: a NUL in an error reply or a prefix of one. */
Test(cluster_map, redirect_lengths) {
    tp__cluster_redirect_t out;
    cr_assert_eq(tp__cluster_parse_redirect("MOVED 1 a:12345", 13, &out), 0);
    cr_assert_eq(out.port, 123);
    cr_assert_eq(tp__cluster_parse_redirect("MOVED 1 a\0:1", 12, &out), TP_EPROTOCOL);
    cr_assert_eq(tp__cluster_parse_redirect("MOVED 1 a:1", 3, &out), 0);
    cr_assert_eq(out.kind, TP__CLUSTER_NOT_REDIRECT);
    cr_assert_eq(tp__cluster_parse_redirect(NULL, 0, &out), 0);
    char host[300] = "MOVED 1 ";
    memset(host + 8, 'h', 256);
    strcpy(host + 264, ":1");
    cr_assert_eq(tp__cluster_parse_redirect(host, strlen(host), &out), TP_EPROTOCOL);
    host[8 + 255] = ':';
    host[8 + 256] = '1';
    host[8 + 257] = '\0';
    cr_assert_eq(tp__cluster_parse_redirect(host, strlen(host), &out), 0);
    cr_assert_eq(strlen(out.host), 255);
}
