#include "tp/prom.h"

#include <stdarg.h>

/* Appends unless an earlier append failed; keeps the first error. */
__attribute__((format(printf, 2, 3))) static void emit(tp_prom_t *p, const char *fmt, ...) {
    if (p->err != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    p->err = tp_buf_vprintf(p->out, fmt, ap);
    va_end(ap);
}

void tp_prom_family(tp_prom_t *p, const char *name, const char *type, const char *help) {
    emit(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tp_prom_int(tp_prom_t *p, const char *name, const char *labels, uint64_t value) {
    if (labels)
        emit(p, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        emit(p, "%s %llu\n", name, (unsigned long long)value);
}

/* Bucket bounds in nanoseconds, with their le text: 1-2.5-5 steps cover what an
 * HFT path cares about (microseconds) and what an outage looks like (seconds). */
static const struct {
    uint64_t ns;
    const char *le;
} bounds[] = {
    {1000, "1e-06"},     {2500, "2.5e-06"},   {5000, "5e-06"},     {10000, "1e-05"},
    {25000, "2.5e-05"},  {50000, "5e-05"},    {100000, "0.0001"},  {250000, "0.00025"},
    {500000, "0.0005"},  {1000000, "0.001"},  {2500000, "0.0025"}, {5000000, "0.005"},
    {10000000, "0.01"},  {25000000, "0.025"}, {50000000, "0.05"},  {100000000, "0.1"},
    {250000000, "0.25"}, {500000000, "0.5"},  {1000000000, "1"},   {2500000000, "2.5"},
    {5000000000, "5"},   {10000000000, "10"},
};

void tp_prom_histogram(tp_prom_t *p, const char *name, const char *labels, const tp_hist_t *h) {
    const char *sep = labels ? "," : "";
    const char *open = labels ? "{" : "", *close = labels ? "}" : "";
    labels = labels ? labels : "";
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]) && p->err == 0; i++)
        emit(p, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, bounds[i].le,
             (unsigned long long)tp_hist_count_le(h, bounds[i].ns));
    emit(p, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)h->total);
    emit(p, "%s_sum%s%s%s %.9f\n", name, open, labels, close, (double)h->sum / 1e9);
    emit(p, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)h->total);
}
