/* The per-account rate watch; see activity.h. */
#include "activity.h"

#include "tp/error.h"
#include "tp/hash.h"

#include <stdlib.h>
#include <string.h>

#define NS_PER_S INT64_C(1000000000)
#define MIN_ACCOUNTS 32u

typedef struct {
    const tp__activity_account_t *accounts;
    tp_str_t account;
} account_key_t;

static bool account_eq(const void *ctx, uint32_t n) {
    const account_key_t *k = ctx;
    const tp__activity_account_t *e = &k->accounts[n];
    return e->len == k->account.len && memcmp(e->account, k->account.ptr, e->len) == 0;
}

int tp__activity_init(tp__activity_t *a, uint32_t rate, uint32_t burst) {
    memset(a, 0, sizeof(*a));
    a->seed = tp__hash_seed();
    a->rate = rate;
    a->burst = burst;
    a->interval_ns = NS_PER_S / rate;
    a->tolerance_ns = a->interval_ns * (int64_t)(burst - 1);
    return tp_table_init(&a->index, MIN_ACCOUNTS);
}

void tp__activity_close(tp__activity_t *a) {
    free(a->accounts);
    tp_table_close(&a->index);
    memset(a, 0, sizeof(*a));
}

/* The account's record, added (with a full allowance) on its first event; NULL: no memory. */
static tp__activity_account_t *account_of(tp__activity_t *a, tp_str_t account, int64_t now_ns) {
    uint64_t h = tp__hash_bytes(a->seed, account.ptr, account.len);
    account_key_t k = {a->accounts, account};
    uint32_t n = tp_table_find(&a->index, h, account_eq, &k);
    if (n != TP_TABLE_NONE)
        return &a->accounts[n];
    if (account.len == 0 || account.len > TP_WIRE_ID_MAX)
        return NULL;
    if (a->count == a->cap) {
        uint32_t cap = a->cap ? 2 * a->cap : MIN_ACCOUNTS;
        tp__activity_account_t *grown =
            cap > TP_TABLE_MAX ? NULL : realloc(a->accounts, (size_t)cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        a->accounts = grown;
        a->cap = cap;
    }
    if (tp_table_insert(&a->index, h, a->count) != 0)
        return NULL;
    tp__activity_account_t *e = &a->accounts[a->count++];
    *e = (tp__activity_account_t){
        .len = (uint8_t)account.len, .tat_ns = now_ns, .alert_after_ns = now_ns};
    memcpy(e->account, account.ptr, account.len);
    return e;
}

int tp__activity_count(tp__activity_t *a, tp_str_t account, int64_t now_ns) {
    tp__activity_account_t *e = account_of(a, account, now_ns);
    if (e == NULL)
        return TP_ENOMEM;
    int64_t tat = e->tat_ns > now_ns ? e->tat_ns : now_ns;
    if (tat - now_ns <= a->tolerance_ns) {
        e->tat_ns = tat + a->interval_ns; /* conforming: it uses up one interval */
        return 0;
    }
    /* Over: not charged, so the allowance comes back at the configured rate. */
    a->exceeded++;
    if (now_ns < e->alert_after_ns)
        return 0;
    e->alert_after_ns = now_ns + NS_PER_S;
    a->alerts++;
    return 1;
}
