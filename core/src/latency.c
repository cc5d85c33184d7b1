#include "tp/latency.h"

static const char *const stage_names[TP_STAGE_COUNT] = {"decode", "queue", "redis", "e2e", "feed"};

const char *tp_stage_name(tp_stage_t stage) {
    return (unsigned)stage < TP_STAGE_COUNT ? stage_names[stage] : "unknown";
}

void tp_latency_reset(tp_latency_t *l) {
    for (int i = 0; i < TP_STAGE_COUNT; i++)
        tp_hist_reset(&l->stage[i]);
}

void tp_latency_merge(tp_latency_t *dst, const tp_latency_t *src) {
    for (int i = 0; i < TP_STAGE_COUNT; i++)
        tp_hist_merge(&dst->stage[i], &src->stage[i]);
}
