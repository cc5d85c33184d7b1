/* Clocks. Latency is measured on the monotonic clock; timestamps that leave the
 * process (Redis fields, events) and those compared with an exchange's or an
 * adapter's are wall-clock nanoseconds since the Unix epoch. Both read the vDSO,
 * a few tens of nanoseconds, so hot paths read them once per batch, not per
 * message. */
#ifndef TP_CLOCK_H
#define TP_CLOCK_H

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline uint64_t tp_clock_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t tp_clock_wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#ifdef __cplusplus
}
#endif

#endif
