/* The Redis Cluster topology as data: which master serves each of the 16,384 hash slots, the
 * node table behind it, and the parsers that fill them from CLUSTER SHARDS (Redis 7) or
 * CLUSTER SLOTS replies and classify MOVED / ASK / TRYAGAIN / CLUSTERDOWN errors.
 *
 * Pure and I/O-free: the Cluster router (not built yet) sends the commands, hands the replies
 * here, and owns the connections. Private to core.
 *
 * A map holds two generations of the topology in its one allocation. A parse builds the spare
 * generation and makes it current only when the whole reply was valid, so a bad reply leaves
 * the map exactly as it was; nothing is allocated per parse or per lookup. Node indexes are
 * valid until the next successful parse (which renumbers the nodes). */
#ifndef TP_CLUSTER_MAP_H
#define TP_CLUSTER_MAP_H

#include "tp/reply.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TP__CLUSTER_SLOTS = 16384,
    TP__CLUSTER_MAX_NODES = 1024, /* masters and replicas together */
    TP__CLUSTER_ID_LEN = 40,      /* hex characters of a node id */
    TP__CLUSTER_IP_MAX = 45,      /* the longest IPv6 text, as Redis's NET_IP_STR_LEN - 1 */
    TP__CLUSTER_HOST_MAX = 255,   /* a DNS name, as Redis's NET_HOST_STR_LEN - 1 */
};

typedef enum { TP__CLUSTER_MASTER, TP__CLUSTER_REPLICA } tp__cluster_role_t;

/* CLUSTER SHARDS's "health". CLUSTER SLOTS says nothing about it, so its nodes are ONLINE
 * (Redis leaves unavailable replicas out of that reply). Anything else Redis may add later
 * reads as UNKNOWN, which, like FAIL and LOADING, owns no slots. */
typedef enum {
    TP__CLUSTER_ONLINE,
    TP__CLUSTER_LOADING,
    TP__CLUSTER_FAIL,
    TP__CLUSTER_UNKNOWN,
} tp__cluster_health_t;

typedef struct {
    char id[TP__CLUSTER_ID_LEN + 1];         /* "" when the reply gave none (old CLUSTER SLOTS) */
    char endpoint[TP__CLUSTER_HOST_MAX + 1]; /* what to connect to: Redis's preferred endpoint */
    char ip[TP__CLUSTER_IP_MAX + 1];         /* "" when not given */
    char hostname[TP__CLUSTER_HOST_MAX + 1]; /* "" when the node announces none */
    uint16_t port;                           /* plaintext port; 0 when not given */
    uint16_t tls_port;                       /* 0 when not given */
    uint16_t connect_port;                   /* the one of them to connect to */
    tp__cluster_role_t role;
    tp__cluster_health_t health;
    int master;        /* a replica's master (node index), or -1 when its shard has none */
    unsigned replicas; /* a master's replicas in the table */
    unsigned slots;    /* slots this node serves now */
} tp__cluster_node_t;

typedef struct tp__cluster_map_s tp__cluster_map_t;

/* An empty map: no nodes, every slot uncovered. NULL on ENOMEM. */
tp__cluster_map_t *tp__cluster_map_new(void);
void tp__cluster_map_free(tp__cluster_map_t *m);

/* Replace the topology with a RESP2 CLUSTER SHARDS reply. A node's endpoint is its "endpoint"
 * field. "" means the endpoint the reply came from (the caller connects there, at the node's
 * port): Redis answers it for a node that does not know its own address (a one-node cluster)
 * and for unknown-endpoint. "?" (hostname without one) means it cannot be reached: the node is
 * left out, and a shard whose master is left out leaves its slots uncovered. The connect port is
 * "tls-port" when prefer_tls and the node has one, else "port"; a node without the port it needs is
 * left out the same way. Only masters whose health is "online" serve slots.
 *
 * Returns the number of slots left uncovered (0 for a healthy cluster), with errbuf holding
 * the first thing left out (a node that cannot be reached, slots without an online master)
 * or "" when nothing was, or TP_EPROTOCOL with errbuf naming what
 * is malformed: a wrong type, a missing field, a slot outside 0..16383 or a range with start >
 * end, a slot claimed by two masters, a node listed twice, a shard with two online masters,
 * more than TP__CLUSTER_MAX_NODES nodes, a port outside 1..65535, an id that is not 40 hex
 * digits, an overlong string or one with spaces or control bytes. On error the map is
 * unchanged. errbuf may be NULL when errlen is 0. */
int tp__cluster_parse_shards(tp__cluster_map_t *m, const tp_reply_t *reply, bool prefer_tls,
                             char *errbuf, size_t errlen);

/* The same from CLUSTER SLOTS, the fallback for servers without SHARDS: [start, end, master,
 * replica...] with each node [endpoint, port, id (3.2+), metadata (7.0+: "ip", "hostname")].
 * A NIL or "" endpoint is stored as "" (the endpoint the reply came from), "?" is unknown. The port
 * is whatever Redis gives this client's connection type (the TLS port over TLS), so it is also the
 * connect port. */
int tp__cluster_parse_slots(tp__cluster_map_t *m, const tp_reply_t *reply, char *errbuf,
                            size_t errlen);

/* O(1): the node serving slot, or -1 when none does or slot >= 16384. */
int tp__cluster_map_node_for_slot(const tp__cluster_map_t *m, unsigned slot);

/* The node at index i (0 <= i < tp__cluster_map_nodes()), or NULL. */
const tp__cluster_node_t *tp__cluster_map_node(const tp__cluster_map_t *m, int i);
int tp__cluster_map_nodes(const tp__cluster_map_t *m);

/* Slots that no node serves now. */
unsigned tp__cluster_map_uncovered(const tp__cluster_map_t *m);

/* The node whose endpoint, ip or hostname is host (ASCII case-insensitive) and whose connect
 * port, port or TLS port is port: the target of a MOVED or ASK. -1 when there is none. */
int tp__cluster_map_find_node(const tp__cluster_map_t *m, const char *host, uint16_t port);

/* The node for host:port, added as an online master with no id when it is not in the table
 * (a MOVED to a node the last refresh did not know yet). Returns its index, TP_EINVAL for an
 * empty, overlong or malformed host or port 0, or TP_EPROTOCOL when the table is full. */
int tp__cluster_map_add_node(tp__cluster_map_t *m, const char *host, uint16_t port);

/* slot is now served by node (a MOVED), or by none when node is -1. 0, or TP_EINVAL when slot
 * >= 16384 or node is not in the table. */
int tp__cluster_map_set_slot(tp__cluster_map_t *m, unsigned slot, int node);

/* What an error reply asks of a Cluster client. */
typedef enum {
    TP__CLUSTER_NOT_REDIRECT, /* any other error, or garbage: hand it to the caller */
    TP__CLUSTER_MOVED,        /* the slot lives at host:port now: update the map, resend */
    TP__CLUSTER_ASK,          /* send ASKING + the command to host:port once; map unchanged */
    TP__CLUSTER_TRYAGAIN,     /* a multi-key command during resharding: retry after a pause */
    TP__CLUSTER_CLUSTERDOWN,  /* the cluster or this slot is down: back off, refresh, retry */
} tp__cluster_redirect_kind_t;

typedef struct {
    tp__cluster_redirect_kind_t kind;
    unsigned slot;                       /* MOVED and ASK */
    char host[TP__CLUSTER_HOST_MAX + 1]; /* MOVED and ASK; "" means the endpoint the command was
                                            sent to (Redis 7 with unknown-endpoint) */
    uint16_t port;                       /* MOVED and ASK */
} tp__cluster_redirect_t;

/* Classifies the text of an error reply (without the leading '-', as tp_reply_t holds it).
 * "MOVED <slot> <host>:<port>" and "ASK ..." take the host up to the last ':', so unbracketed
 * IPv6 ("::1:6380") and hostnames both work; "[::1]:6380" is accepted too. Returns 0, or
 * TP_EPROTOCOL when a MOVED or ASK is malformed (slot above 16383 or not a number, no or a bad
 * port, an overlong host, anything after the port); out->kind is then NOT_REDIRECT. */
int tp__cluster_parse_redirect(const char *err, size_t len, tp__cluster_redirect_t *out);

#endif
