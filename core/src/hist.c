/* Latency histograms (tp/hist.h): everything but the inline recorder.
 *
 * Walks over the counts go index by index. Bucket geometry of an index is
 * recovered from the index alone (index_shift/index_lowest below), the inverse of
 * tp__hist_index(), so no walk needs a division or a logarithm.
 *
 * tp_core does not link libm, so the two places that need more than + - * / (a
 * square root for the standard deviation, a base-2 logarithm for the percentile
 * ticks) do it with plain arithmetic. */
#include "tp/hist.h"

#include "tp/error.h"

#include <float.h>
#include <inttypes.h>
#include <string.h>

/* The constants of tp/hist.h keep its promise, and no more. */
_Static_assert(TP_HIST_SUB_BUCKETS >= 2 * 1000 && TP_HIST_SUB_BUCKETS / 2 < 2 * 1000,
               "sub_bucket_count is the smallest power of two >= 2 * 10^3");
_Static_assert(((uint64_t)TP_HIST_SUB_BUCKETS << (TP_HIST_BUCKETS - 1)) > TP_HIST_HIGHEST,
               "the top bucket must reach past 60 s");
_Static_assert(((uint64_t)TP_HIST_SUB_BUCKETS << (TP_HIST_BUCKETS - 2)) <= TP_HIST_HIGHEST,
               "one bucket fewer must not suffice (no unused bucket)");

/* The log2 width of index i's bucket. Bucket 0 is the only one stored whole
 * (values 0..2047 at indices 0..2047); from there on index b * 1024 + s, with s
 * in [1024, 2048), is sub-bucket s of bucket b. */
static unsigned index_shift(uint32_t i) {
    return i < TP_HIST_SUB_BUCKETS ? 0 : (i >> TP_HIST_HALF_BITS) - 1;
}

static uint64_t index_lowest(uint32_t i) {
    unsigned b = index_shift(i);
    /* Bucket 0 stores its whole range, so its sub-bucket is the index itself; higher
     * buckets store only the upper half, sub-buckets 1024..2047. */
    uint64_t sub = b == 0 ? i : (i & (TP_HIST_SUB_BUCKET_HALF - 1)) + TP_HIST_SUB_BUCKET_HALF;
    return sub << b;
}

static uint64_t index_highest(uint32_t i) {
    return index_lowest(i) + (UINT64_C(1) << index_shift(i)) - 1;
}

/* HdrHistogram's "median equivalent value": the middle of the bucket, rounded up,
 * which for width-1 buckets is the value itself. */
static uint64_t index_mid(uint32_t i) {
    return index_lowest(i) + ((UINT64_C(1) << index_shift(i)) >> 1);
}

void tp_hist_reset(tp_hist_t *h) {
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void tp_hist_record_n(tp_hist_t *h, uint64_t ns, uint64_t n) {
    /* With n = 0 nothing was seen, so min and max must not move either. */
    if (n == 0)
        return;
    uint64_t over = ns > TP_HIST_HIGHEST;
    uint64_t v = over ? TP_HIST_HIGHEST : ns;
    h->counts[tp__hist_index(v)] += n;
    h->total += n;
    h->sum += v * n;
    h->overflow += over * n;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void tp_hist_merge(tp_hist_t *dst, const tp_hist_t *src) {
    for (size_t i = 0; i < TP_HIST_COUNTS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    dst->overflow += src->overflow;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t tp_hist_lowest_equivalent(uint64_t v) {
    unsigned b = tp__hist_bucket(v);
    return (v >> b) << b;
}

uint64_t tp_hist_highest_equivalent(uint64_t v) {
    /* lowest + width - 1 cannot wrap: at v = UINT64_MAX it is exactly UINT64_MAX. */
    return tp_hist_lowest_equivalent(v) + (UINT64_C(1) << tp__hist_bucket(v)) - 1;
}

/* ceil(pct / 100 * total), at least 1 and at most total. 99.9 is not exact in
 * binary and 99.9 / 100 * 10000 computes as 9990.000000000002, whose plain ceiling
 * would be rank 9991; the computation errs by a few ulps at most, so an excess
 * below 2^-45 of the product is noise and rounds down. (Java HdrHistogram nudges
 * pct one ulp down for the same reason; HdrHistogram_c rounds to nearest.) */
static uint64_t rank_at(double pct, uint64_t total) {
    double want = pct / 100.0 * (double)total;
    /* Checked first because (double)total may round up to 2^64, which does not
     * convert back; below it the truncation is defined. */
    if (want >= (double)total)
        return total;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want && want - (double)rank > want * 0x1p-45)
        rank++;
    if (rank < 1)
        rank = 1;
    return rank < total ? rank : total;
}

uint64_t tp_hist_percentile(const tp_hist_t *h, double pct) {
    if (h->total == 0)
        return 0;
    if (!(pct >= 0.0)) /* also catches NaN */
        pct = 0.0;
    if (pct > 100.0)
        pct = 100.0;
    uint64_t rank = rank_at(pct, h->total);
    uint64_t seen = 0;
    for (uint32_t i = 0; i < TP_HIST_COUNTS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return pct == 0.0 ? index_lowest(i) : index_highest(i);
    }
    return 0; /* unreachable while the counts add up to total */
}

uint64_t tp_hist_count_le(const tp_hist_t *h, uint64_t ns) {
    /* The indices to add are those below `end`: everything when ns reaches the top
     * of the last bucket, else up to ns's own bucket, which is included only when
     * ns is its top. (ns >= the top of the last index also keeps tp__hist_index()
     * within the array.) */
    uint32_t end;
    if (ns >= index_highest(TP_HIST_COUNTS - 1))
        end = TP_HIST_COUNTS;
    else
        end = tp__hist_index(ns) + (tp_hist_highest_equivalent(ns) == ns ? 1 : 0);
    uint64_t n = 0;
    for (uint32_t i = 0; i < end; i++)
        n += h->counts[i];
    return n;
}

double tp_hist_mean(const tp_hist_t *h) {
    return h->total == 0 ? 0.0 : (double)h->sum / (double)h->total;
}

/* sqrt(x) for x >= 0 by Newton's iteration from above: it falls monotonically to
 * the root and stops when a step no longer decreases it, within an ulp of the
 * root. Starting at max(x, 1) keeps the start above the root for any x. */
static double root(double x) {
    if (!(x > 0.0))
        return 0.0;
    double r = x > 1.0 ? x : 1.0;
    for (;;) {
        double next = 0.5 * (r + x / r);
        if (next >= r)
            return r;
        r = next;
    }
}

double tp_hist_stddev(const tp_hist_t *h) {
    if (h->total == 0)
        return 0.0;
    double mean = tp_hist_mean(h);
    double acc = 0.0;
    for (uint32_t i = 0; i < TP_HIST_COUNTS; i++) {
        if (h->counts[i] == 0)
            continue;
        double d = (double)index_mid(i) - mean;
        acc += d * d * (double)h->counts[i];
    }
    return root(acc / (double)h->total);
}

/* ---- .hgrm output -------------------------------------------------------------------------- */

/* Rows are printed at percentile levels 0, 10, 20, .., 50, then 55, .., 75, then
 * 77.5, ..: TICKS per half of the remaining distance to 100 %. */
#define TICKS_PER_HALF_DISTANCE 5

/* The level after `level` (< 100). HdrHistogram takes k = floor(log2(100 / (100 -
 * level))) with log(); halving the ratio counts the same k exactly, and the levels
 * themselves are sums of 10 / 2^k, exact in binary, so no rounding creeps in. */
static double next_level(double level) {
    double ratio = 100.0 / (100.0 - level);
    double half_distances = 2.0; /* 2^(k + 1) */
    while (ratio >= 2.0) {
        ratio /= 2.0;
        half_distances *= 2.0;
    }
    return level + 100.0 / (TICKS_PER_HALF_DISTANCE * half_distances);
}

/* The layout is Java HdrHistogram's (AbstractHistogram.outputPercentileDistribution
 * at 3 significant digits), the one its plotFiles.html was written against.
 * HdrHistogram_c's classic format differs: other header padding, and an "inf"
 * fourth column on the last row where Java leaves the column out. */
static int write_rows(const tp_hist_t *h, FILE *f, double div) {
    uint64_t seen = 0;
    uint32_t last = 0;
    double level = 0.0;
    for (uint32_t i = 0; i < TP_HIST_COUNTS && seen < h->total; i++) {
        if (h->counts[i] == 0)
            continue;
        seen += h->counts[i];
        last = i;
        double reached = 100.0 * (double)seen / (double)h->total;
        double value = (double)index_highest(i) / div;
        /* One bucket may pass several levels. Once every value is seen only the
         * final 100 % row follows (HdrHistogram's iterator ends there), so the
         * last bucket gets one row here at most. */
        while (level <= reached && level < 100.0) {
            double p = level / 100.0;
            /* Deep levels such as 99.97802734375 % give a 13th decimal of exactly 5,
             * which Java's formatter rounds up and printf, working on the binary
             * value just below it, rounds down. One or two ulps up settle such a tie
             * Java's way and are far too small to move any other rounding. */
            double shown = p * (1.0 + 0x1p-52);
            if (fprintf(f, "%12.3f %2.12f %10" PRIu64 " %14.2f\n", value, shown, seen,
                        1.0 / (1.0 - p)) < 0)
                return TP_EIO;
            double next = next_level(level);
            /* With totals beyond 2^53 the levels could crawl below the double
             * resolution near 100 %; stop the ticks rather than loop. */
            level = next > level ? next : 100.0;
            if (seen == h->total)
                break;
        }
    }
    if (fprintf(f, "%12.3f %2.12f %10" PRIu64 "\n", (double)index_highest(last) / div, 1.0, seen) <
        0)
        return TP_EIO;
    return 0;
}

int tp_hist_write_hgrm(const tp_hist_t *h, FILE *f, double unit_divisor) {
    if (!(unit_divisor > 0.0 && unit_divisor <= DBL_MAX)) /* NaN, infinities, <= 0 */
        return TP_EINVAL;
    if (fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
                "1/(1-Percentile)") < 0)
        return TP_EIO;
    if (h->total > 0) {
        int err = write_rows(h, f, unit_divisor);
        if (err != 0)
            return err;
    }
    /* The footer's last line states the geometry (bucket_count, sub_bucket_count),
     * so a reader can tell the resolution the rows were recorded at. */
    if (fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", tp_hist_mean(h) / unit_divisor,
                tp_hist_stddev(h) / unit_divisor) < 0 ||
        fprintf(f, "#[Max     = %12.3f, Total count    = %12" PRIu64 "]\n",
                (double)h->max / unit_divisor, h->total) < 0 ||
        fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n", TP_HIST_BUCKETS,
                (int)TP_HIST_SUB_BUCKETS) < 0)
        return TP_EIO;
    /* stdio buffers: a write error (a full disk) may only surface here. */
    if (fflush(f) != 0 || ferror(f))
        return TP_EIO;
    return 0;
}
