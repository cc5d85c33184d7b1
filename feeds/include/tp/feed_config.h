/* The feeds' settings (feeds/src/feed_config.c): where frames come from and how
 * large they may be, as a group of the settings registry (tp/settings.h): TP_FEED_TCP,
 * TP_FEED_UDP, TP_FEED_UDP_GROUP, TP_FEED_REPLAY, TP_FEED_REPLAY_SPEED,
 * TP_MAX_FRAME_BYTES, TP_FEED_MAX_CONNECTIONS, TP_FEED_FRAME_TIMEOUT. */
#ifndef TP_FEED_CONFIG_H
#define TP_FEED_CONFIG_H

#include "tp/settings.h"

#include <stddef.h>

/* Feed sources. An address is "IPv4:port" or "[IPv6]:port"; port 0 picks a free
 * port. NULL means the source is off. Strings are NULL or malloc'd, owned by the
 * struct and freed by tp_feed_config_close() or, once registered,
 * tp_settings_close(). */
typedef struct {
    char *tcp_addr;         /* TP_FEED_TCP: listener for adapters */
    char *udp_addr;         /* TP_FEED_UDP: one frame per datagram */
    char *udp_group;        /* TP_FEED_UDP_GROUP: multicast group to join; NULL = unicast */
    char *replay_path;      /* TP_FEED_REPLAY: a file of size-prefixed frames */
    double replay_speed;    /* TP_FEED_REPLAY_SPEED: 0 = full speed, 1 = real time, 2 = 2x */
    size_t max_frame_bytes; /* TP_MAX_FRAME_BYTES: largest frame body */
    int max_connections;    /* TP_FEED_MAX_CONNECTIONS: TCP adapters at once */
    int frame_timeout_ms;   /* TP_FEED_FRAME_TIMEOUT: incomplete TCP frame, while read; 0 = off */
} tp_feed_config_t;

/* Fills every feed setting with its default. Pair with tp_feed_config_close(). */
void tp_feed_config_init(tp_feed_config_t *cfg);
void tp_feed_config_close(tp_feed_config_t *cfg);

/* Adds the feeds' group over *cfg (filled first), with its validator: a multicast
 * group needs a UDP socket of its family. Returns tp_settings_add()'s result. */
int tp_feed_config_register(tp_settings_t *reg, tp_feed_config_t *cfg);

#endif
