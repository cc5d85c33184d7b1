/* libFuzzer target: the Cluster reply path without I/O (core/src/cluster_map.h). The input's
 * bytes are RESP, parsed by core's own reader (reply.h) into replies, and every reply goes to
 * tp__cluster_parse_shards, tp__cluster_parse_slots and, when it is an error or a string,
 * tp__cluster_parse_redirect; a MOVED then updates the map as a router would. The input is
 * also classified whole, as one error text.
 *
 *   byte 0   bit 0: prefer TLS ports for CLUSTER SHARDS
 *   rest     RESP bytes (tests/fuzz/corpus/cluster/ holds replies of a real 7.0 cluster)
 *
 * Besides the sanitizers, it aborts when a promise of cluster_map.h breaks:
 *   - a parse returns the uncovered slot count or TP_EPROTOCOL, and a failed parse leaves the
 *     map as it was (nodes, uncovered count, the owner of every slot);
 *   - the map is consistent: every slot's node is in the table, the nodes' slot counts and the
 *     uncovered count add up to 16,384, every message is NUL-terminated inside its buffer;
 *   - a redirect returns 0 or TP_EPROTOCOL; a MOVED or ASK has a slot below 16,384, a port
 *     above 0 and a host of at most 255 bytes. */
#include "cluster_map.h"
#include "reply.h"
#include "tp/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cluster: %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Each parse walks all 16,384 slots a few times to check the map; a few replies per input
 * keep the rate up. */
enum { MAX_REPLIES = 4 };

static uint16_t before[TP__CLUSTER_SLOTS];

static void check_map(const tp__cluster_map_t *m) {
    unsigned sum = tp__cluster_map_uncovered(m);
    int nodes = tp__cluster_map_nodes(m);
    CHECK(nodes >= 0 && nodes <= TP__CLUSTER_MAX_NODES, "%d nodes", nodes);
    for (int i = 0; i < nodes; i++)
        sum += tp__cluster_map_node(m, i)->slots;
    CHECK(sum == TP__CLUSTER_SLOTS, "slots add up to %u", sum);
    for (unsigned s = 0; s < TP__CLUSTER_SLOTS; s++) {
        int n = tp__cluster_map_node_for_slot(m, s);
        CHECK(n >= -1 && n < nodes, "slot %u -> node %d of %d", s, n, nodes);
    }
}

/* Runs one parser and checks the result against the map before it. */
static void parse(tp__cluster_map_t *m, const tp_reply_t *r, int which, bool tls) {
    char err[128];
    int nodes = tp__cluster_map_nodes(m);
    unsigned uncovered = tp__cluster_map_uncovered(m);
    for (unsigned s = 0; s < TP__CLUSTER_SLOTS; s++)
        before[s] = (uint16_t)tp__cluster_map_node_for_slot(m, s);
    int rc = which ? tp__cluster_parse_slots(m, r, err, sizeof(err))
                   : tp__cluster_parse_shards(m, r, tls, err, sizeof(err));
    CHECK(memchr(err, '\0', sizeof(err)) != NULL, "message not terminated");
    CHECK(rc == TP_EPROTOCOL || (rc >= 0 && (unsigned)rc == tp__cluster_map_uncovered(m)), "rc %d",
          rc);
    if (rc == TP_EPROTOCOL) {
        CHECK(nodes == tp__cluster_map_nodes(m) && uncovered == tp__cluster_map_uncovered(m),
              "a failed parse changed the map: %s", err);
        for (unsigned s = 0; s < TP__CLUSTER_SLOTS; s++)
            CHECK(before[s] == (uint16_t)tp__cluster_map_node_for_slot(m, s),
                  "a failed parse moved slot %u", s);
        return;
    }
    check_map(m);
}

static void redirect(tp__cluster_map_t *m, const char *text, size_t len) {
    tp__cluster_redirect_t out;
    int rc = tp__cluster_parse_redirect(text, len, &out);
    CHECK(rc == 0 || rc == TP_EPROTOCOL, "redirect rc %d", rc);
    if (out.kind != TP__CLUSTER_MOVED && out.kind != TP__CLUSTER_ASK)
        return;
    CHECK(out.slot < TP__CLUSTER_SLOTS && out.port > 0 && strlen(out.host) <= 255,
          "redirect to slot %u port %u", out.slot, out.port);
    if (out.kind == TP__CLUSTER_MOVED && out.host[0] != '\0') {
        int n = tp__cluster_map_add_node(m, out.host, out.port);
        CHECK(n >= 0 || n == TP_EPROTOCOL, "add_node %d", n);
        if (n >= 0)
            CHECK(tp__cluster_map_set_slot(m, out.slot, n) == 0, "set_slot");
        check_map(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A fresh map per input, so that a reproducer needs nothing before it. */
    tp__cluster_map_t *map = size ? tp__cluster_map_new() : NULL;
    if (map == NULL)
        return 0;
    bool tls = data[0] & 1;
    tp__arena_t arena = {0};
    redisReader *reader = tp__reader_new(&arena);
    CHECK(reader != NULL, "reader");
    redirect(map, (const char *)data + 1, size - 1);
    if (redisReaderFeed(reader, (const char *)data + 1, size - 1) == REDIS_OK) {
        void *reply;
        for (int i = 0; i < MAX_REPLIES; i++) {
            if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == NULL)
                break;
            const tp_reply_t *r = reply;
            parse(map, r, 0, tls);
            parse(map, r, 1, tls);
            if (r->type == TP_REPLY_ERROR || r->type == TP_REPLY_STRING)
                redirect(map, r->str, r->len);
        }
    }
    tp__reader_free(reader);
    tp__arena_free(&arena);
    tp__cluster_map_free(map);
    return 0;
}
