/* The mark writer; see tp/mark_writer.h. */
#include "mark_writer_int.h"
#include "tp/error.h"
#include "tp/log.h"
#include "tp/resp.h"

#include <stdio.h>
#include <string.h>

/* Positions one write carries at most: a bigger account goes out in parts, one after another. */
#define MARKS_PER_WRITE 64u
/* Positions re-marked per loop iteration at most (about 100 us of work). */
#define REMARK_CHUNK 2048u
#define KEY_MAX (256 + TP_WIRE_ID_MAX + 8)

static bool quote(void *ctx, tp_str_t symbol, tp_quote_t *out) {
    tp_order_writer_t *w = ctx;
    return w->cb.quote != NULL && w->cb.quote(w, symbol, out);
}

/* ---- one account's write ---------------------------------------------------------------- */

int tp__pf_fields_resp(tp_buf_t *b, const tp_pf_fields_t *f) {
    int rc = 0;
    for (size_t i = 0; i < f->count && rc == 0; i++) {
        rc = tp_resp_arg(b, f->field[i], f->field_len[i]);
        if (rc == 0)
            rc = tp_resp_arg(b, f->value[i], f->value_len[i]);
    }
    return rc;
}

/* HSET <key> with the first n marked positions of a and the account's totals. */
static int encode(tp_mark_writer_t *m, const tp_pf_account_t *a, const char *key, size_t klen,
                  uint32_t n) {
    tp_buf_t *b = &m->resp;
    tp_pf_fields_t f;
    tp_buf_truncate(b, 0);
    int rc = tp_resp_array(b, 2 + 2 * (2 * (size_t)n + 2));
    if (rc == 0)
        rc = tp_resp_arg(b, "HSET", 4);
    if (rc == 0)
        rc = tp_resp_arg(b, key, klen);
    const tp_position_t *p = tp_pf_account_first_marked(a);
    for (uint32_t i = 0; i < n && rc == 0; i++, p = tp_position_next_marked(p)) {
        tp_position_mark_fields(p, &f);
        rc = tp__pf_fields_resp(b, &f);
    }
    tp_portfolio_totals_fields(&m->orders->portfolio, tp_pf_account_name(a), &f);
    return rc == 0 ? tp__pf_fields_resp(b, &f) : rc;
}

static void on_written(void *data, int status, const tp_reply_t *reply);

/* Queues a's write, n positions of it, on the account's connection (the one its order units
 * take: every key carries the {ACCT} tag). */
static int send_part(tp_mark_writer_t *m, tp_pf_account_t *a, uint32_t n) {
    tp_order_writer_t *w = m->orders;
    tp_str_t name = tp_pf_account_name(a);
    char key[KEY_MAX];
    int klen = snprintf(key, sizeof(key), "%s{%.*s}:pf", w->prefix, (int)name.len, name.ptr);
    if (klen < 0 || (size_t)klen >= sizeof(key))
        return TP_EINVAL;
    int rc = encode(m, a, key, (size_t)klen, n);
    if (rc != 0)
        return rc;
    tp_mark_write_t *mw = m->free_writes;
    tp_conn_t *conn = tp_pool_conn_for_key(w->pool, key, (size_t)klen);
    rc = tp_conn_send_unit(conn, tp_buf_ptr(&m->resp), tp_buf_size(&m->resp), 1, NULL, on_written,
                           mw);
    if (rc != 0)
        return rc;
    m->free_writes = mw->next_free;
    m->in_flight++;
    m->positions_in_flight += n;
    mw->account = a;
    mw->positions = n;
    tp_portfolio_marks_sent(&w->portfolio, a, n);
    return 0;
}

/* As many of a's positions as one write and the budget in flight take; a write over
 * REDIS_MAX_QUEUED_BYTES (TP_EINVAL) is tried again in halves. */
static int send_account(tp_mark_writer_t *m, tp_pf_account_t *a) {
    uint32_t n = tp_pf_account_marked(a);
    uint32_t budget = TP_MARK_POSITIONS_MAX - m->positions_in_flight;
    n = n < MARKS_PER_WRITE ? n : MARKS_PER_WRITE;
    n = n < budget ? n : budget;
    if (n == 0)
        return TP_EBACKPRESSURE;
    int rc;
    while ((rc = send_part(m, a, n)) == TP_EINVAL && n > 1)
        n /= 2;
    return rc;
}

static void log_refusal(tp_mark_writer_t *m, const tp_pf_account_t *a, int status,
                        const tp_reply_t *reply) {
    uint64_t now = uv_now(tp_pool_loop(m->orders->pool));
    m->hold_until = now + TP_MARK_RETRY_MS;
    if (now < m->log_after)
        return;
    m->log_after = now + 1000;
    tp_str_t name = tp_pf_account_name(a);
    char account[TP_WIRE_ID_MAX + 1];
    snprintf(account, sizeof(account), "%.*s", (int)name.len, name.ptr);
    TP_LOG(TP_LOG_ERROR, "redis refused a mark write; retrying", TP_STR("account", account),
           TP_STR("reply", status == TP_EREPLY ? reply->str : tp_strerror(status)));
}

static void on_written(void *data, int status, const tp_reply_t *reply) {
    tp_mark_write_t *mw = data;
    tp_mark_writer_t *m = mw->writer;
    if (status == TP_ECLOSED)
        return; /* closing: the portfolio goes too */
    if (status == 0) {
        m->stats.written++;
    } else {
        m->stats.failed++;
        if (status != TP_EDOWN) /* down: sends fail at once until it is back, no spin */
            log_refusal(m, mw->account, status, reply);
    }
    tp_portfolio_marks_done(&m->orders->portfolio, mw->account, status == 0);
    mw->account = NULL;
    mw->next_free = m->free_writes;
    m->free_writes = mw;
    m->in_flight--;
    m->positions_in_flight -= mw->positions;
}

/* ---- flushing ----------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *h);

/* Marks go out in cycles. A cycle begins once the accounts queued by the one before have all
 * gone out: it takes the symbols that moved until then (the ticks since only noted each symbol
 * once), re-marks their positions, REMARK_CHUNK at most per loop iteration, and only
 * then lets the accounts go, each with all its new marks in one write. So re-marking and
 * writing cost what Redis can take, however fast prices tick, and a busy account is written
 * once per cycle, not once per tick. */
static void remark(tp_mark_writer_t *m) {
    tp_order_writer_t *w = m->orders;
    tp_portfolio_t *pf = &w->portfolio;
    if (m->cycle == 0) {
        if (!m->open || tp_portfolio_marks_next(pf) != NULL)
            return;
        m->cycle = tp_portfolio_prices_moved(pf);
        m->open = w->cfg->mark_interval_ms == 0; /* else the timer opens the next cycle */
    }
    uint32_t before = tp_portfolio_prices_moved(pf);
    tp_portfolio_remark(pf, w->cfg->mark_rule, quote, w, m->cycle, REMARK_CHUNK);
    m->cycle -= before - tp_portfolio_prices_moved(pf);
}

static void flush(tp_mark_writer_t *m) {
    tp_order_writer_t *w = m->orders;
    tp_portfolio_t *pf = &w->portfolio;
    remark(m);
    if (m->cycle > 0 || tp_portfolio_marks_next(pf) == NULL)
        return;
    /* A unit waiting to go again carries older marks: nothing may land before it (its retry
     * timer wakes the loop). After a refusal, a pause; the timer ends it if nothing else does. */
    uint64_t now = uv_now(tp_pool_loop(w->pool));
    if (tp_order_writer_stalled(w) || now < m->hold_until) {
        m->stats.deferred++;
        if (now < m->hold_until && w->cfg->mark_interval_ms == 0)
            uv_timer_start(&m->timer, on_timer, m->hold_until - now, 0);
        return;
    }
    tp_pf_account_t *a;
    while ((a = tp_portfolio_marks_next(pf)) != NULL) {
        if (m->free_writes == NULL || send_account(m, a) != 0) {
            m->stats.deferred++; /* stays queued and keeps absorbing newer marks */
            return;
        }
    }
}

static void on_check(uv_check_t *h) {
    flush(h->data);
}

/* The interval's tick, or the end of a pause: the check phase of this iteration flushes. */
static void on_timer(uv_timer_t *h) {
    tp_mark_writer_t *m = h->data;
    m->open = true;
}

/* ---- life cycle --------------------------------------------------------------------------- */

void tp__mark_writer_init(tp_mark_writer_t *m, tp_order_writer_t *w) {
    uv_loop_t *loop = tp_pool_loop(w->pool);
    memset(m, 0, sizeof(*m));
    m->orders = w;
    for (int i = TP_MARK_WRITES_MAX - 1; i >= 0; i--) {
        m->writes[i] = (tp_mark_write_t){.writer = m, .next_free = m->free_writes};
        m->free_writes = &m->writes[i];
    }
    uv_check_init(loop, &m->check);
    uv_timer_init(loop, &m->timer);
    m->check.data = m->timer.data = m;
    /* Started after the pool's check handle, so it runs first (newest first): the writes go
     * out in this iteration's flush. */
    uv_check_start(&m->check, on_check);
    uint64_t every = (uint64_t)w->cfg->mark_interval_ms;
    m->open = every == 0;
    if (every > 0)
        uv_timer_start(&m->timer, on_timer, every, every);
    uv_unref((uv_handle_t *)&m->check);
    uv_unref((uv_handle_t *)&m->timer);
}

void tp__mark_writer_stop(tp_mark_writer_t *m) {
    uv_check_stop(&m->check);
    uv_timer_stop(&m->timer);
}

bool tp__mark_writer_idle(const tp_mark_writer_t *m) {
    const tp_portfolio_t *pf = &m->orders->portfolio;
    /* Moves a TP_MARK_INTERVAL has not let in yet wait for it, not for a shutdown: the next
     * start re-marks every position anyway. */
    return m->in_flight == 0 && m->cycle == 0 && tp_portfolio_marks_next(pf) == NULL &&
           (!m->open || tp_portfolio_prices_moved(pf) == 0);
}

void tp__mark_writer_close(tp_mark_writer_t *m) {
    uv_close((uv_handle_t *)&m->check, NULL);
    uv_close((uv_handle_t *)&m->timer, NULL);
    tp_buf_free(&m->resp);
}
