/* The feeds' settings: one table of rows for the settings registry (tp/settings.h)
 * over tp_feed_config_t, and the rule between its fields. */
#include "tp/feed_config.h"
#include "tp/bars.h"
#include "tp/price_writer.h"

#include "tp/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define FIELD(f) offsetof(tp_feed_config_t, f)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const tp_setting_t feed_settings[] = {
    {"TP_FEED_TCP", "--feed-tcp", "127.0.0.1:7400", &tp_setting_addr, FIELD(tcp_addr), 0, 0, 0,
     "TCP listener for adapters: IPv4:port, [IPv6]:port or off"},
    {"TP_FEED_UDP", "--feed-udp", "127.0.0.1:7401", &tp_setting_addr, FIELD(udp_addr), 0, 0, 0,
     "UDP socket for tick datagrams (one frame each): IPv4:port, [IPv6]:port or off"},
    {"TP_FEED_UDP_GROUP", "--feed-udp-group", NULL, &tp_setting_group, FIELD(udp_group), 0, 0, 0,
     "multicast group the UDP socket joins; unset = unicast"},
    {"TP_FEED_REPLAY", "--feed-replay", NULL, &tp_setting_str, FIELD(replay_path), 1, 0,
     TP_SETTING_READABLE,
     "file of size-prefixed frames to replay at start (back-tests, benchmarks)"},
    {"TP_FEED_REPLAY_SPEED", "--feed-replay-speed", "0", &tp_setting_ratio, FIELD(replay_speed), 0,
     1000000, 0, "replay pace against the frames' timestamps: 0 = full speed, 1 = real time"},
    {"TP_MAX_FRAME_BYTES", "--max-frame-bytes", "64KiB", &tp_setting_bytes, FIELD(max_frame_bytes),
     64, 16 * 1024 * TP_SETTING_KIB, 0,
     "largest frame accepted; a longer length prefix is bad input"},
    {"TP_FEED_MAX_CONNECTIONS", "--feed-max-connections", "64", &tp_setting_int,
     FIELD(max_connections), 1, 100000, 0, "TCP adapter connections accepted at once"},
    {"TP_FEED_FRAME_TIMEOUT", "--feed-frame-timeout", "10s", &tp_setting_duration,
     FIELD(frame_timeout_ms), 0, TP_SETTING_HOUR_MS, 0,
     "close a TCP adapter connection whose incomplete frame is read for longer; 0 = off"},
};

static const char *env_of(size_t offset) {
    return tp_settings_find(feed_settings, COUNT(feed_settings), offset)->env;
}

/* A multicast group is joined by the UDP socket, so it needs one of its family. */
static int validate_feeds(const void *group, char *err, size_t errlen) {
    const tp_feed_config_t *f = group;
    const char *udp = env_of(FIELD(udp_addr));
    const char *mcast = env_of(FIELD(udp_group));
    if (!f->udp_group)
        return 0;
    if (!f->udp_addr) {
        snprintf(err, errlen, "%s is set but %s is off: the group is joined by the UDP socket",
                 mcast, udp);
        return TP_ECONFIG;
    }
    bool group_v6 = strchr(f->udp_group, ':') != NULL;
    bool udp_v6 = f->udp_addr[0] == '[';
    if (group_v6 != udp_v6) {
        snprintf(err, errlen, "%s=%s and %s=%s: the group and the socket must both be IPv4 or IPv6",
                 mcast, f->udp_group, udp, f->udp_addr);
        return TP_ECONFIG;
    }
    return 0;
}

void tp_feed_config_init(tp_feed_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    tp_settings_defaults(feed_settings, COUNT(feed_settings), cfg);
}

void tp_feed_config_close(tp_feed_config_t *cfg) {
    tp_settings_free(feed_settings, COUNT(feed_settings), cfg);
}

int tp_feed_config_register(tp_settings_t *reg, tp_feed_config_t *cfg) {
    return tp_settings_add(reg, feed_settings, COUNT(feed_settings), cfg, validate_feeds);
}

/* ---- the price writer's group ------------------------------------------------------------- */

#define MD_FIELD(f) offsetof(tp_price_writer_config_t, f)

static const tp_setting_t price_writer_settings[] = {
    {"TP_MD_PUBLISH", "--md-publish", "false", &tp_setting_bool, MD_FIELD(md_publish), 0, 0, 0,
     "publish every tick on <prefix>md:SYM (in TP_EVENT_FORMAT)"},
    {"TP_MD_HISTORY", "--md-history", "0", &tp_setting_int, MD_FIELD(md_history), 0, INT32_MAX, 0,
     "keep about N ticks per symbol in the stream <prefix>hist:SYM; 0 = off"},
    {"TP_BARS", "--bars", NULL, &tp_setting_str, MD_FIELD(bars), 1, 0, 0,
     "OHLCV bars of the ticks' trades by exchange time, e.g. 1m,5m,1h (s, m or h): the latest "
     "in the hash <prefix>bar:IV:SYM, each closed one in the stream <prefix>bars:IV:SYM, also "
     "published there; unset = off"},
    {"TP_BARS_MAXLEN", "--bars-maxlen", "100000", &tp_setting_int, MD_FIELD(bars_maxlen), 1,
     1 << 30, 0, "closed bars each bar stream keeps (XADD MAXLEN ~)"},
};

static int validate_price_writer(const void *group, char *err, size_t errlen) {
    const tp_price_writer_config_t *c = group;
    int64_t ns[TP_BARS_MAX_INTERVALS];
    char names[TP_BARS_MAX_INTERVALS][TP_BARS_NAME_MAX];
    int n;
    const char *why;
    if (c->bars == NULL || tp_bars_parse(c->bars, ns, names, &n, &why) == 0)
        return 0;
    snprintf(err, errlen, "TP_BARS=%s: %s", c->bars, why);
    return TP_ECONFIG;
}

void tp_price_writer_config_init(tp_price_writer_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    tp_settings_defaults(price_writer_settings, COUNT(price_writer_settings), cfg);
}

void tp_price_writer_config_close(tp_price_writer_config_t *cfg) {
    tp_settings_free(price_writer_settings, COUNT(price_writer_settings), cfg);
}

int tp_price_writer_config_register(tp_settings_t *reg, tp_price_writer_config_t *cfg) {
    return tp_settings_add(reg, price_writer_settings, COUNT(price_writer_settings), cfg,
                           validate_price_writer);
}
