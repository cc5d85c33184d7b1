/* The UDP feed source: one size-prefixed frame per datagram, unicast or from a
 * joined multicast group. UDP can neither push back nor retransmit, so it
 * carries ticks only: an order event that arrived this way could be lost
 * silently next time, and is refused loudly instead. */
#include "feeds_int.h"

#include "tp/clock.h"
#include "tp/error.h"
#include "tp/log.h"

#include <stdlib.h>
#include <string.h>

/* The largest UDP payload (IPv6's; IPv4's is 65507): a datagram never holds more. */
#define UDP_MAX_PAYLOAD 65527

/* The datagram lands at the start of the aligned udp_buf and is decoded there. */
#define UDP_BUF_SIZE ((UDP_MAX_PAYLOAD + TP_WIRE_ALIGN - 1) / TP_WIRE_ALIGN * TP_WIRE_ALIGN)
#define UDP_SOURCE "udp"

static void on_udp_closed(uv_handle_t *h) {
    tp__feeds_handle_closed(h->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    tp_feeds_t *f = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)f->udp_buf, UDP_MAX_PAYLOAD);
}

/* Checks that the datagram is exactly one frame, so that each framing fault is
 * counted as itself rather than as a failed verification; -1 when not (counted). */
static int check_datagram(tp_feeds_t *f, const uint8_t *p, ssize_t nread, unsigned flags) {
    if (flags & UV_UDP_PARTIAL) {
        tp__feeds_bad(f, TP_FEED_BAD_OVERSIZED, UDP_SOURCE, "datagram larger than the buffer");
        return -1;
    }
    if (nread < TP_WIRE_PREFIX_BYTES) {
        tp__feeds_bad(f, TP_FEED_BAD_TRUNCATED, UDP_SOURCE, "datagram shorter than a prefix");
        return -1;
    }
    uint32_t len = tp_wire_read_prefix(p);
    if (len > f->cfg->max_frame_bytes) {
        tp__feeds_bad(f, TP_FEED_BAD_OVERSIZED, UDP_SOURCE, NULL);
        return -1;
    }
    size_t have = (size_t)nread - TP_WIRE_PREFIX_BYTES;
    if (len > have) {
        tp__feeds_bad(f, TP_FEED_BAD_TRUNCATED, UDP_SOURCE, "datagram shorter than its frame");
        return -1;
    }
    if (len < have) {
        tp__feeds_bad(f, TP_FEED_BAD_LENGTH, UDP_SOURCE, NULL);
        return -1;
    }
    return 0;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
    tp_feeds_t *f = h->data;
    tp_feed_bad_t bad;
    tp_frame_t frame;

    if (nread == 0 && !addr)
        return; /* nothing more to read this time */
    if (nread < 0) {
        TP_LOG(TP_LOG_WARN, "feed receive failed", TP_STR("source", UDP_SOURCE),
               TP_STR("error", uv_strerror((int)nread)));
        return;
    }
    f->stats.bytes += (uint64_t)nread;
    const uint8_t *p = (const uint8_t *)buf->base;
    if (check_datagram(f, p, nread, flags) != 0 ||
        tp__feeds_decode(f, p, (size_t)nread, &frame, UDP_SOURCE, &bad) != 0)
        return;
    if (frame.type != TP_BODY_TICK) {
        tp__feeds_bad(f, TP_FEED_BAD_UNEXPECTED, UDP_SOURCE,
                      "UDP carries ticks only: send order events over TCP");
        return;
    }
    tp_feed_meta_t meta = {TP_FEED_UDP, tp_clock_mono_ns(), tp_clock_wall_ns(), 0};
    tp__feeds_dispatch(f, &frame, &meta, NULL);
}

static int udp_fail(tp_feeds_t *f, const char *what, int rc) {
    snprintf(f->errstr, sizeof(f->errstr), "%s: %s", what, uv_strerror(rc));
    return rc;
}

static int udp_join(tp_feeds_t *f) {
    const char *group = f->cfg->udp_group;
    if (!group)
        return 0;
    int rc = uv_udp_set_membership(&f->udp, group, NULL, UV_JOIN_GROUP);
    if (rc != 0) {
        snprintf(f->errstr, sizeof(f->errstr), "TP_FEED_UDP_GROUP=%s: cannot join: %s", group,
                 uv_strerror(rc));
    }
    return rc;
}

int tp__feed_udp_start(tp_feeds_t *f) {
    struct sockaddr_storage sa;
    const char *addr = f->cfg->udp_addr;
    if (!addr)
        return 0;
    if (tp_config_parse_addr(addr, &sa) != 0) {
        snprintf(f->errstr, sizeof(f->errstr), "TP_FEED_UDP=%s: not an address", addr);
        return TP_ECONFIG;
    }
    f->udp_buf = aligned_alloc(TP_WIRE_ALIGN, UDP_BUF_SIZE);
    if (!f->udp_buf)
        return udp_fail(f, "TP_FEED_UDP", UV_ENOMEM);
    uv_udp_init(f->loop, &f->udp);
    f->udp.data = f;
    f->udp_open = true;
    f->open_handles++;
    /* A multicast group may have several listeners on one host (A/B lines, tools). */
    int rc = uv_udp_bind(&f->udp, (struct sockaddr *)&sa, f->cfg->udp_group ? UV_UDP_REUSEADDR : 0);
    if (rc != 0) {
        snprintf(f->errstr, sizeof(f->errstr), "TP_FEED_UDP=%s: cannot bind: %s", addr,
                 uv_strerror(rc));
        return rc;
    }
    rc = udp_join(f);
    if (rc != 0)
        return rc;
    rc = uv_udp_recv_start(&f->udp, on_alloc, on_recv);
    if (rc != 0)
        return udp_fail(f, "TP_FEED_UDP", rc);
    TP_LOG(TP_LOG_INFO, "feed listening", TP_STR("source", UDP_SOURCE), TP_STR("address", addr),
           TP_INT("port", tp_feeds_udp_port(f)),
           TP_STR("group", f->cfg->udp_group ? f->cfg->udp_group : ""));
    return 0;
}

int tp_feeds_udp_port(const tp_feeds_t *f) {
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    if (!f->udp_open || uv_udp_getsockname(&f->udp, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    return tp__feeds_port_of(&sa);
}

void tp__feed_udp_stop(tp_feeds_t *f) {
    if (f->udp_open)
        uv_udp_recv_stop(&f->udp);
}

void tp__feed_udp_close(tp_feeds_t *f) {
    if (f->udp_open) {
        f->udp_open = false;
        uv_close((uv_handle_t *)&f->udp, on_udp_closed);
    }
}
