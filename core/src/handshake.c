/* The handshake of each new socket: AUTH, SELECT, PING, the fence of the previous socket and
 * CLIENT INFO, sent together before anything else (conn.h). */
#include "conn.h"

#include "tp/error.h"
#include "tp/log.h"
#include "tp/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HS_AUTH, HS_SELECT, HS_PING, HS_FENCE, HS_IDENTIFY, HS_NAME, HS_GATE };

/* CLIENT KILL of the previous connection, by the id and addresses Redis gave it (and the ACL
 * user, when there is one). Its unanswered commands are replayed on this one; without the
 * fence, those of them Redis had not read yet would run after the replay, overwriting newer
 * values with older ones. The other filters guard against a restarted Redis (or another
 * server behind the same name) that handed the same id to another client. Within one process
 * only: a tickplane that died cannot fence its connections. */
static int encode_fence(const tp_conn_t *c, tp_buf_t *b) {
    const char *user = c->env->cfg->username;
    const tp__handshake_t *h = &c->hs;
    int rc = tp_resp_array(b, user ? 10 : 8);
    rc |= tp_resp_arg(b, "CLIENT", 6);
    rc |= tp_resp_arg(b, "KILL", 4);
    rc |= tp_resp_arg(b, "ID", 2);
    rc |= tp_resp_arg_ll(b, h->redis_id);
    rc |= tp_resp_arg(b, "ADDR", 4);
    rc |= tp_resp_arg(b, h->redis_addr, strlen(h->redis_addr));
    rc |= tp_resp_arg(b, "LADDR", 5);
    rc |= tp_resp_arg(b, h->redis_laddr, strlen(h->redis_laddr));
    if (user) {
        rc |= tp_resp_arg(b, "USER", 4);
        rc |= tp_resp_arg(b, user, strlen(user));
    }
    return rc;
}

/* The owner's guard (tp_pool_options_t): the name first, so that whoever lists the clients
 * to end them finds this one from the moment its gate has passed. */
static int encode_gate(tp_conn_t *c, tp_buf_t *b) {
    const tp_pool_options_t *o = c->env->opts;
    tp__handshake_t *h = &c->hs;
    int rc = 0;
    if (o == NULL)
        return 0;
    if (o->client_name) {
        rc |= tp_resp_array(b, 3);
        rc |= tp_resp_arg(b, "CLIENT", 6);
        rc |= tp_resp_arg(b, "SETNAME", 7);
        rc |= tp_resp_arg(b, o->client_name, strlen(o->client_name));
        h->steps[h->pending++] = HS_NAME;
    }
    if (o->gate_script) {
        rc |= tp_resp_array(b, 5);
        rc |= tp_resp_arg(b, "EVAL", 4);
        rc |= tp_resp_arg(b, o->gate_script, strlen(o->gate_script));
        rc |= tp_resp_arg(b, "1", 1);
        rc |= tp_resp_arg(b, o->gate_key, strlen(o->gate_key));
        rc |= tp_resp_arg(b, o->gate_arg, strlen(o->gate_arg));
        h->steps[h->pending++] = HS_GATE;
    }
    return rc;
}

/* Their replies come back first, before any replayed command, because the log is only
 * written once the connection is ready. PING comes first of the checks so that its refusal
 * (NOAUTH, LOADING) is the one reported. A subscriber replays no writes, so it needs neither
 * the fence nor its identity. */
int tp__handshake_encode(tp_conn_t *c, tp_buf_t *b) {
    const tp_redis_config_t *cfg = c->env->cfg;
    tp__handshake_t *h = &c->hs;
    int rc = 0;
    h->pending = 0;
    h->next = 0;
    if (cfg->password) {
        bool user = cfg->username != NULL;
        rc |= tp_resp_array(b, user ? 3 : 2);
        rc |= tp_resp_arg(b, "AUTH", 4);
        if (user)
            rc |= tp_resp_arg(b, cfg->username, strlen(cfg->username));
        rc |= tp_resp_arg(b, cfg->password, strlen(cfg->password));
        h->steps[h->pending++] = HS_AUTH;
    }
    if (cfg->database != 0) {
        rc |= tp_resp_array(b, 2);
        rc |= tp_resp_arg(b, "SELECT", 6);
        rc |= tp_resp_arg_ll(b, cfg->database);
        h->steps[h->pending++] = HS_SELECT;
    }
    rc |= tp_resp_array(b, 1);
    rc |= tp_resp_arg(b, "PING", 4);
    h->steps[h->pending++] = HS_PING;
    if (!c->pubsub && h->fence && h->redis_id > 0) {
        rc |= encode_fence(c, b);
        h->steps[h->pending++] = HS_FENCE;
    }
    if (!c->pubsub) {
        rc |= tp_resp_array(b, 2);
        rc |= tp_resp_arg(b, "CLIENT", 6);
        rc |= tp_resp_arg(b, "INFO", 4);
        h->steps[h->pending++] = HS_IDENTIFY;
    }
    if (!c->pubsub)
        rc |= encode_gate(c, b);
    return rc != 0 ? TP_ENOMEM : 0;
}

/* The value of "<name>=" in a CLIENT INFO line ("id=7 addr=127.0.0.1:5000 ..."), copied into
 * out; false when absent or too long. */
static bool client_info_field(const tp_reply_t *r, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    for (size_t i = 0; i + nlen < r->len; i++) {
        if ((i > 0 && r->str[i - 1] != ' ') || memcmp(r->str + i, name, nlen) != 0 ||
            r->str[i + nlen] != '=')
            continue;
        const char *v = r->str + i + nlen + 1, *end = r->str + r->len;
        size_t n = 0;
        while (v + n < end && v[n] != ' ' && v[n] != '\n' && v[n] != '\r')
            n++;
        if (n == 0 || n >= cap)
            return false;
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Without CLIENT (not granted, renamed away) tickplane still runs, unfenced: say so loudly,
 * once per connection and failure, and count it. */
static void fence_unavailable(tp_conn_t *c, const char *what, const tp_reply_t *r) {
    c->env->stats->fence_failures++;
    TP_LOG(TP_LOG_ERROR, "redis connection cannot be fenced", TP_INT("conn", c->id),
           TP_STR("command", what), TP_STR("reply", r->str ? r->str : ""),
           TP_STR("consequence", "after a reconnect, commands still on their way over the "
                                 "previous connection may run after the replay"),
           TP_STR("fix", "Redis 6.2 or later, with +client|info and +client|kill allowed to "
                         "the Redis user"));
}

static void on_fence_reply(tp_conn_t *c, const tp_reply_t *r) {
    if (r->type != TP_REPLY_INTEGER) {
        fence_unavailable(c, "CLIENT KILL", r);
    } else {
        /* 0 killed: Redis had already read and closed it (it was frozen, or restarted). */
        c->env->stats->fenced++;
        TP_LOG(TP_LOG_INFO, "redis connection fenced", TP_INT("conn", c->id),
               TP_INT("previous_client_id", c->hs.redis_id), TP_INT("killed", r->integer));
    }
    c->hs.fence = false;
}

static void on_identify_reply(tp_conn_t *c, const tp_reply_t *r) {
    tp__handshake_t *h = &c->hs;
    char id[24];
    h->redis_id = 0;
    if (r->type == TP_REPLY_STRING && client_info_field(r, "id", id, sizeof(id)) &&
        client_info_field(r, "addr", h->redis_addr, sizeof(h->redis_addr)) &&
        client_info_field(r, "laddr", h->redis_laddr, sizeof(h->redis_laddr)))
        h->redis_id = strtoll(id, NULL, 10);
    if (h->redis_id <= 0)
        fence_unavailable(c, "CLIENT INFO", r);
}

static int refused(tp_conn_t *c, int step, const tp_reply_t *r) {
    const char *text = r->str ? r->str : "";
    if (step == HS_AUTH) {
        snprintf(c->errstr, sizeof(c->errstr),
                 "Redis refused AUTH: %.*s (check REDIS_USERNAME/REDIS_PASSWORD)", (int)r->len,
                 text);
        return TP_EAUTH;
    }
    if (step == HS_GATE) {
        if (r->type == TP_REPLY_ERROR)
            snprintf(c->errstr, sizeof(c->errstr), "the connection's gate refused it: %.*s",
                     (int)r->len, text);
        else
            snprintf(c->errstr, sizeof(c->errstr), "the connection's gate returned no 1");
        return TP_ENOT_OWNER;
    }
    if (step == HS_NAME) {
        snprintf(c->errstr, sizeof(c->errstr), "Redis refused CLIENT SETNAME: %.*s", (int)r->len,
                 text);
        return TP_EPROTOCOL;
    }
    if (step == HS_SELECT) {
        snprintf(c->errstr, sizeof(c->errstr),
                 "Redis refused SELECT %d: %.*s (check REDIS_DATABASE)", c->env->cfg->database,
                 (int)r->len, text);
        return TP_ESELECT;
    }
    bool noauth = r->type == TP_REPLY_ERROR && r->len >= 6 && memcmp(r->str, "NOAUTH", 6) == 0;
    snprintf(c->errstr, sizeof(c->errstr), "Redis refused PING: %.*s%s", (int)r->len, text,
             noauth ? " (set REDIS_PASSWORD)" : "");
    return noauth ? TP_EAUTH : TP_EPROTOCOL;
}

int tp__handshake_reply(tp_conn_t *c, const tp_reply_t *r) {
    tp__handshake_t *h = &c->hs;
    int step = h->steps[h->next++];
    if (step == HS_FENCE)
        on_fence_reply(c, r);
    else if (step == HS_IDENTIFY)
        on_identify_reply(c, r);
    else if (step == HS_GATE ? r->type != TP_REPLY_INTEGER || r->integer != 1
                             : r->type != TP_REPLY_STATUS)
        return refused(c, step, r);
    return --h->pending > 0;
}
