/* The per-account order-event rate watch of the order writer (TP_ACCOUNT_EVENT_RATE): a GCRA
 * (generic cell rate algorithm) per account, in memory, on the loop. An account may send
 * `rate` events per second with bursts of `burst`; an event beyond that is counted, and at
 * most once a second per account it calls for an alert. Nothing is ever dropped or delayed:
 * the watch only says what it saw. Private to orders/. */
#ifndef TP_ORDERS_ACTIVITY_H
#define TP_ORDERS_ACTIVITY_H

#include "tp/table.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char account[TP_WIRE_ID_MAX + 1];
    uint8_t len;
    int64_t tat_ns;         /* GCRA's theoretical arrival time of the next event */
    int64_t alert_after_ns; /* no new alert for the account before this */
} tp__activity_account_t;

typedef struct tp__activity_s {
    tp_table_t index; /* account -> accounts[] */
    tp__activity_account_t *accounts;
    uint32_t count, cap;
    uint64_t seed;        /* account names come from the gateways: a seeded hash */
    int64_t interval_ns;  /* 1 s / rate */
    int64_t tolerance_ns; /* how far ahead of now the TAT may run: (burst - 1) intervals */
    uint32_t rate, burst; /* as configured, for the alert */
    uint64_t exceeded;    /* events over the limit */
    uint64_t alerts;      /* alerts called for */
} tp__activity_t;

/* rate > 0 events per second, burst >= 1. Returns 0 or TP_ENOMEM. */
int tp__activity_init(tp__activity_t *a, uint32_t rate, uint32_t burst);
void tp__activity_close(tp__activity_t *a);

/* One event of account at now_ns (monotonic). Returns 1 when it is over the limit and an alert
 * is due, 0 otherwise (within the limit, or over it with an alert sent less than a second
 * ago), or TP_ENOMEM (a new account that cannot be added: the event is not counted). */
int tp__activity_count(tp__activity_t *a, tp_str_t account, int64_t now_ns);

#endif
