/* Prometheus text exposition (format 0.0.4), written into a tp_buf_t:
 *
 *   tp_prom_t p = {.out = &buf};
 *   tp_prom_family(&p, "tickplane_frames_total", "counter", "Frames decoded.");
 *   tp_prom_int(&p, "tickplane_frames_total", NULL, frames);
 *   ...
 *   if (p.err) ... TP_ENOMEM
 *
 * Errors are sticky: once an append fails the rest are skipped and p.err keeps
 * the first code, so a renderer checks once at the end. Names and labels are
 * the caller's constants (no escaping is done); label text is `key="value"`,
 * several joined by commas. */
#ifndef TP_PROM_H
#define TP_PROM_H

#include "tp/buf.h"
#include "tp/hist.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A page being written. */
typedef struct {
    tp_buf_t *out; /* the caller's buffer, appended to */
    int err;       /* the first error (TP_ENOMEM); later writes do nothing */
} tp_prom_t;

/* The # HELP and # TYPE lines that start a family; type is "counter", "gauge"
 * or "histogram". */
void tp_prom_family(tp_prom_t *p, const char *name, const char *type, const char *help);

/* One sample: name{labels} value. labels may be NULL. */
void tp_prom_int(tp_prom_t *p, const char *name, const char *labels, uint64_t value);

/* A histogram of nanosecond values as name_bucket{labels,le="..."} (cumulative,
 * in seconds, from 1 us to 10 s plus +Inf), name_sum (seconds) and name_count.
 * A bucket counts the values whose histogram bucket lies wholly at or below its
 * bound, so bounds are exact to the histogram's 3 significant digits. */
void tp_prom_histogram(tp_prom_t *p, const char *name, const char *labels, const tp_hist_t *h);

#ifdef __cplusplus
}
#endif

#endif
