/* The service's latency stages, one HDR histogram each (tp/hist.h), all in
 * nanoseconds:
 *
 *   decode  frame received (the read that carried it) -> frame decoded
 *   queue   decoded -> the Redis command carrying it handed to the socket
 *   redis   command handed to the socket -> its reply parsed (every command)
 *   e2e     frame received -> the reply of the write that carries it parsed
 *   feed    the frame's sent_ns, else its exchange or transaction time -> received;
 *           wall clocks of two hosts, so only as good as their synchronisation
 *           (a negative difference is not recorded)
 *
 * A conflated price write carries several ticks: its queue and e2e times count
 * from the oldest of them, the one that waited longest. Recording is a few
 * nanoseconds and never allocates; the struct is large (about 1.1 MB), so
 * callers allocate it once, statically or with calloc. */
#ifndef TP_LATENCY_H
#define TP_LATENCY_H

#include "tp/hist.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The stages above, in that order. */
typedef enum {
    TP_STAGE_DECODE, /* received -> decoded */
    TP_STAGE_QUEUE,  /* decoded -> written to the socket */
    TP_STAGE_REDIS,  /* written -> reply parsed */
    TP_STAGE_E2E,    /* received -> reply parsed */
    TP_STAGE_FEED,   /* the source's clock -> received */
    TP_STAGE_COUNT   /* the number of stages */
} tp_stage_t;

/* One histogram per stage. */
typedef struct {
    tp_hist_t stage[TP_STAGE_COUNT]; /* indexed by tp_stage_t */
} tp_latency_t;

/* "decode", "queue", ... : metric labels and log keys. */
const char *tp_stage_name(tp_stage_t stage);

/* When the input a command serves arrived and was decoded (monotonic ns); zero
 * when the command serves no measured input. */
typedef struct {
    uint64_t recv_ns;    /* the read that carried the input */
    uint64_t decoded_ns; /* the input decoded */
} tp_origin_t;

/* Empties every stage. */
void tp_latency_reset(tp_latency_t *l);

/* Records end - start in stage when both are set and end >= start. */
static inline void tp_latency_span(tp_latency_t *l, tp_stage_t stage, uint64_t start,
                                   uint64_t end) {
    if (l && start && end >= start)
        tp_hist_record(&l->stage[stage], end - start);
}

/* dst += src, stage by stage. */
void tp_latency_merge(tp_latency_t *dst, const tp_latency_t *src);

#ifdef __cplusplus
}
#endif

#endif
