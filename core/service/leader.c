/* The leader lease; see leader.h. */
#include "leader.h"

#include "tp/error.h"
#include "tp/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MIN_MS 50
#define RETRY_ERROR_MS 500

/* The lock key still holds our token: the lease is ours, as Redis sees it now. */
const char leader_gate_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end\n"
    "return redis.error_reply('NOTLEADER the leader lease has a newer holder')\n";

const char *leader_state_name(leader_state_t s) {
    static const char *const names[] = {"standby", "fencing", "leader", "lost"};
    return names[s];
}

static void try_acquire(leader_t *l);

static void on_retry(uv_timer_t *t) {
    try_acquire(t->data);
}

static void retry_in(leader_t *l, int64_t ms) {
    if (!l->closing)
        uv_timer_start(&l->retry, on_retry, (uint64_t)(ms < RETRY_MIN_MS ? RETRY_MIN_MS : ms), 0);
}

/* ---- fencing older holders off ------------------------------------------------------------- */

static void elected(leader_t *l) {
    l->state = LEADER_ELECTED;
    TP_LOG(TP_LOG_INFO, "leader lease taken", TP_STR("lease", l->name), TP_INT("fence", l->fence),
           TP_INT("connections_ended", l->killed));
    l->on_elected(l);
}

/* An old holder's connection that could not be ended could still write after our first
 * write: then the listing runs again, and the election waits. */
static void kill_done(leader_t *l, bool ok) {
    l->kill_failed |= !ok;
    if (--l->kills_pending > 0 || l->state != LEADER_FENCING || l->closing)
        return;
    l->listing = false;
    if (!l->kill_failed)
        elected(l);
    else
        retry_in(l, RETRY_ERROR_MS);
}

static void on_killed(void *data, int status, const tp_reply_t *reply) {
    leader_t *l = data;
    if (status == TP_ECLOSED)
        return;
    bool ok = status == 0 && reply->type == TP_REPLY_INTEGER;
    if (ok)
        l->killed += (uint64_t)reply->integer;
    else
        TP_LOG(TP_LOG_ERROR, "leader lease: CLIENT KILL failed; listing again",
               TP_STR("error", status == TP_EREPLY ? reply->str : tp_strerror(status)));
    kill_done(l, ok);
}

/* The client id on a CLIENT LIST line named for this lease with another holder's token; 0 when
 * the line is anything else. */
static long long older_holder(const leader_t *l, const char *text, size_t len) {
    char line[4096], name[sizeof(l->name_base) + 8];
    if (len >= sizeof(line) || len < 3 || strncmp(text, "id=", 3) != 0)
        return 0;
    memcpy(line, text, len);
    line[len] = '\0';
    snprintf(name, sizeof(name), " name=%s", l->name_base);
    const char *at = strstr(line, name);
    if (at == NULL)
        return 0;
    const char *token = at + strlen(name);
    size_t n = strcspn(token, " ");
    const char *ours = tp_lock_token(&l->lock);
    if (n == strlen(ours) && memcmp(token, ours, n) == 0)
        return 0;
    return strtoll(line + 3, NULL, 10);
}

/* Every connection named for another holder's token is killed; the election waits for every
 * kill's answer (kill_done). */
static void on_client_list(void *data, int status, const tp_reply_t *reply) {
    leader_t *l = data;
    if (l->closing || status == TP_ECLOSED)
        return;
    l->listing = status == 0; /* its kills count down to the end of the listing */
    if (status != 0) {
        TP_LOG(TP_LOG_ERROR, "leader lease: CLIENT LIST failed; trying again",
               TP_STR("error", status == TP_EREPLY ? reply->str : tp_strerror(status)));
        uv_timer_start(&l->retry, on_retry, RETRY_ERROR_MS, 0); /* re-runs the fencing */
        return;
    }
    l->kills_pending = 1; /* until every kill is queued */
    l->kill_failed = false;
    for (const char *p = reply->str, *end = reply->str + reply->len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        long long id = older_holder(l, p, len);
        if (id > 0) {
            char ids[24];
            snprintf(ids, sizeof(ids), "%lld", id);
            const char *argv[] = {"CLIENT", "KILL", "ID", ids};
            l->kills_pending++;
            if (tp_pool_command(&l->pool, on_killed, l, 4, argv, NULL) != 0)
                kill_done(l, false);
        }
        p += len + 1;
    }
    kill_done(l, true); /* the placeholder */
}

static void fence_older_holders(leader_t *l) {
    const char *argv[] = {"CLIENT", "LIST", "TYPE", "normal"};
    if (l->listing)
        return; /* one at a time: its kills are counted */
    l->listing = tp_pool_command(&l->pool, on_client_list, l, 4, argv, NULL) == 0;
    if (!l->listing)
        retry_in(l, RETRY_ERROR_MS);
}

/* ---- the lease ----------------------------------------------------------------------------- */

static void on_acquired(tp_lock_t *lock, int status, uint64_t fence, int64_t retry_after_ms) {
    leader_t *l = lock->data;
    if (l->closing || status == TP_ECLOSED)
        return;
    if (status == TP_ELOCKED) {
        retry_in(l, retry_after_ms < 0 || retry_after_ms > l->ttl_ms / 3 ? l->ttl_ms / 3
                                                                         : retry_after_ms);
        return;
    }
    if (status != 0) {
        TP_LOG(TP_LOG_WARN, "leader lease: acquire failed", TP_STR("error", tp_strerror(status)));
        retry_in(l, RETRY_ERROR_MS);
        return;
    }
    l->fence = fence;
    l->state = LEADER_FENCING;
    snprintf(l->client_name, sizeof(l->client_name), "%s%s", l->name_base, tp_lock_token(lock));
    fence_older_holders(l);
}

static void try_acquire(leader_t *l) {
    if (l->closing)
        return;
    if (l->state == LEADER_FENCING) {
        fence_older_holders(l); /* the listing failed: again */
        return;
    }
    if (l->state != LEADER_STANDBY || l->lock.acquiring)
        return;
    l->tries++;
    if (tp_lock_acquire(&l->lock, on_acquired) != 0)
        retry_in(l, RETRY_ERROR_MS);
}

static void on_lease_lost(tp_lock_t *lock) {
    leader_t *l = lock->data;
    if (l->closing)
        return;
    l->state = LEADER_LOST;
    TP_LOG(TP_LOG_ERROR, "leader lease lost", TP_STR("lease", l->name), TP_INT("fence", l->fence));
    l->on_lost(l);
}

static void on_lease_pool_ready(tp_pool_t *pool) {
    try_acquire(pool->data);
}

int leader_start(leader_t *l, uv_loop_t *loop, const tp_redis_config_t *cfg, const char *name,
                 int ttl_ms, leader_cb on_elected, leader_cb on_lost) {
    void *data = l->data;
    memset(l, 0, sizeof(*l));
    l->data = data;
    l->cfg = *cfg;
    l->cfg.pool_size = 1;
    l->ttl_ms = ttl_ms;
    l->on_elected = on_elected;
    l->on_lost = on_lost;
    snprintf(l->name, sizeof(l->name), "%s", name);
    const char *prefix = cfg->key_prefix ? cfg->key_prefix : "";
    /* The prefix and the database in the name: another deployment on the same Redis with the
     * same lease name is none of our business. */
    snprintf(l->gate_key, sizeof(l->gate_key), "%slock:{%s}", prefix, name);
    snprintf(l->name_base, sizeof(l->name_base), "tp-lease:%d:%s:", cfg->database, l->gate_key);
    l->pool.data = l;
    tp_pool_options_t opts = {.on_ready = on_lease_pool_ready};
    int rc = tp_pool_init(&l->pool, loop, &l->cfg, &opts);
    if (rc != 0)
        return rc;
    l->pool_open = true;
    uv_timer_init(loop, &l->retry);
    l->retry.data = l;
    l->lock.data = l;
    tp_lock_options_t lo = {.ttl_ms = ttl_ms, .auto_renew = true, .on_lost = on_lease_lost};
    rc = tp_lock_init(&l->lock, &l->pool, name, &lo);
    l->lock_open = rc == 0;
    return rc;
}

void leader_pool_options(const leader_t *l, tp_pool_options_t *opts) {
    opts->client_name = l->client_name;
    opts->gate_script = leader_gate_script;
    opts->gate_key = l->gate_key;
    opts->gate_arg = tp_lock_token(&l->lock);
}

/* ---- closing ------------------------------------------------------------------------------- */

static void on_lease_pool_closed(tp_pool_t *pool) {
    leader_t *l = pool->data;
    if (l->close_cb)
        l->close_cb(l);
}

static void on_lock_closed(tp_lock_t *lock, int status) {
    leader_t *l = lock->data;
    (void)status;
    tp_pool_close(&l->pool, on_lease_pool_closed);
}

static void on_released(tp_lock_t *lock, int status) {
    leader_t *l = lock->data;
    if (status == 0)
        TP_LOG(TP_LOG_INFO, "leader lease released", TP_STR("lease", l->name));
    tp_lock_close(lock, on_lock_closed);
}

void leader_close(leader_t *l, leader_cb cb) {
    if (l->closing || !l->pool_open)
        return;
    l->closing = true;
    l->close_cb = cb;
    uv_close((uv_handle_t *)&l->retry, NULL);
    if (!l->lock_open)
        tp_pool_close(&l->pool, on_lease_pool_closed);
    else if (!tp_lock_held(&l->lock) || tp_lock_release(&l->lock, on_released) != 0)
        tp_lock_close(&l->lock, on_lock_closed);
}
