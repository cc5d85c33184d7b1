/* Latency histograms: HDR-style log-linear buckets, 3 significant digits, 1 ns to 60 s.
 *
 * One geometry, fixed at compile time, the one HdrHistogram derives for a lowest
 * discernible value of 1, a highest trackable value of 60e9 and 3 significant
 * digits. Values 0..2047 each have a bucket of their own; above that, bucket b
 * (b = 1..25) holds [1024 << b, 2048 << b) in 1024 sub-buckets of width 2^b, so
 * every value is kept to better than 1 part in 1000 (3 significant digits). The
 * lower half of each bucket's sub-bucket range would repeat the bucket below, so
 * it is not stored: the counts are (26 + 1) * 1024 = 27648 uint64_t, 216 KiB.
 *
 * No allocation, ever: the counts live inside tp_hist_t, and the caller owns the
 * struct (static storage or one calloc at start-up; it is too big for a stack).
 * Recording is a few instructions (tp_hist_record() below is inline): no
 * division, no floating point, no branch beyond the range clamp.
 *
 * Not thread-safe: give each thread (each event loop) its own histogram and
 * tp_hist_merge() them for reporting. Every counter wraps modulo 2^64, which at
 * any plausible rate and latency takes centuries. */
#ifndef TP_HIST_H
#define TP_HIST_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- geometry ------------------------------------------------------------------------------ */

/* What the histogram promises: values in [TP_HIST_LOWEST, TP_HIST_HIGHEST] ns kept to
 * TP_HIST_SIGFIGS significant digits. 0 is recordable too (bucket of its own). */
#define TP_HIST_LOWEST UINT64_C(1)
#define TP_HIST_HIGHEST UINT64_C(60000000000) /* 60 s */
#define TP_HIST_SIGFIGS 3                     /* significant digits kept */

/* HdrHistogram's derived constants for that promise. unit_magnitude is
 * log2(TP_HIST_LOWEST) = 0, so it appears nowhere below. sub_bucket_count is the
 * smallest power of two >= 2 * 10^SIGFIGS: below it every value is exact, and a
 * bucket of sub_bucket_count / 2 steps of width w spans [half * w, count * w), whose
 * relative step w / (half * w) = 1/1024 < 1/1000. core/src/hist.c checks them at compile
 * time. */
#define TP_HIST_SUB_BUCKET_BITS 11
#define TP_HIST_SUB_BUCKETS (1u << TP_HIST_SUB_BUCKET_BITS)              /* 2048 */
#define TP_HIST_HALF_BITS (TP_HIST_SUB_BUCKET_BITS - 1)                  /* 10 */
#define TP_HIST_SUB_BUCKET_HALF (1u << TP_HIST_HALF_BITS)                /* 1024 */
#define TP_HIST_BUCKETS 26                                               /* 2048 << 25 > 60e9 */
#define TP_HIST_COUNTS ((TP_HIST_BUCKETS + 1) * TP_HIST_SUB_BUCKET_HALF) /* 27648 */

/* ---- the histogram ------------------------------------------------------------------------- */

/* An HDR histogram of nanoseconds: fixed size, never allocates. */
typedef struct {
    uint64_t total;    /* values recorded, overflowed ones included */
    uint64_t min;      /* the smallest value as passed in (not clamped); UINT64_MAX when empty */
    uint64_t max;      /* the largest value as passed in (not clamped) */
    uint64_t sum;      /* sum of recorded values in ns after clamping (Prometheus _sum) */
    uint64_t overflow; /* values above TP_HIST_HIGHEST, recorded as TP_HIST_HIGHEST */
    uint64_t counts[TP_HIST_COUNTS]; /* per bucket index (tp__hist_index()) */
} tp_hist_t;

/* Empties h: zero counts, min UINT64_MAX. Also the initialiser (a zeroed struct is
 * not empty: its min would be 0). */
void tp_hist_reset(tp_hist_t *h);

/* The counts index of v (v <= 2^36 - 1, which covers everything clamped to
 * TP_HIST_HIGHEST). Internal, shared by the inline recorder and hist.c.
 *
 * OR-ing in sub_bucket_count - 1 gives every value below 2048 the same leading bit
 * (bit 10), so they all land in bucket 0 at width 1, and clzll never sees 0. Above
 * that, the bucket is how far the leading bit sits above bit 10, the sub-bucket is
 * v >> bucket (in [1024, 2048)), and bucket b's stored half starts at index
 * (b + 1) * 1024 - 1024 = b * 1024. */
static inline unsigned tp__hist_bucket(uint64_t v) {
    return (unsigned)(64 - TP_HIST_SUB_BUCKET_BITS) -
           (unsigned)__builtin_clzll(v | (TP_HIST_SUB_BUCKETS - 1));
}

static inline uint32_t tp__hist_index(uint64_t v) {
    unsigned b = tp__hist_bucket(v);
    return ((uint32_t)b << TP_HIST_HALF_BITS) + (uint32_t)(v >> b);
}

/* Records one value of ns nanoseconds. A value above TP_HIST_HIGHEST counts in
 * h->overflow and is recorded (bucket and sum) as TP_HIST_HIGHEST, so _sum and
 * the buckets agree and sum cannot be blown up by one garbage timestamp; min and
 * max keep the value as given, so the report still shows how bad it was. */
static inline void tp_hist_record(tp_hist_t *h, uint64_t ns) {
    uint64_t over = ns > TP_HIST_HIGHEST;
    uint64_t v = over ? TP_HIST_HIGHEST : ns; /* compiles to a conditional move */
    h->counts[tp__hist_index(v)]++;
    h->total++;
    h->sum += v;
    h->overflow += over;
    h->min = ns < h->min ? ns : h->min;
    h->max = ns > h->max ? ns : h->max;
}

/* Records ns n times, exactly as n calls of tp_hist_record() would (n = 0 changes
 * nothing, min and max included). */
void tp_hist_record_n(tp_hist_t *h, uint64_t ns, uint64_t n);

/* Adds src into dst: afterwards dst is what recording both value streams into one
 * histogram would have given, byte for byte. */
void tp_hist_merge(tp_hist_t *dst, const tp_hist_t *src);

/* ---- queries ------------------------------------------------------------------------------- */

/* The smallest and largest values that share v's bucket (pure geometry, defined for
 * every uint64_t, no clamping). Below 2048 both are v; 2048 and 2049 share a bucket,
 * 4096..4099 another. */
uint64_t tp_hist_lowest_equivalent(uint64_t v);
/* See tp_hist_lowest_equivalent(). */
uint64_t tp_hist_highest_equivalent(uint64_t v);

/* The value at percentile pct (clamped to [0, 100]; NaN counts as 0), with
 * HdrHistogram's semantics: the rank is ceil(pct / 100 * total), at least 1 (a
 * product only floating-point noise above an integer counts as that integer, so
 * 99.9 % of 10000 is rank 9990); the answer is the highest equivalent value of the
 * first bucket whose cumulative count reaches the rank. Two cases follow
 * HdrHistogram too: pct 0 gives the *lowest* equivalent value of the smallest
 * value's bucket, and pct 100 the highest equivalent value of the largest value's
 * bucket (not h->max: for an overflowed max that is the top of 60 s's bucket,
 * 60028878847). 0 when h is empty. O(TP_HIST_COUNTS). */
uint64_t tp_hist_percentile(const tp_hist_t *h, double pct);

/* How many recorded values lie in buckets whose highest equivalent value is <= ns:
 * Prometheus's cumulative _bucket{le} count. Exact when ns is the top of a bucket
 * (any ns < 2048, 2049, 4099, ...); otherwise the bucket straddling ns is left
 * out whole, so the count may miss values within 0.1 % (3 significant digits)
 * below ns. Overflowed values sit in 60 s's bucket, so they count only from
 * ns = 60028878847 up. O(TP_HIST_COUNTS). */
uint64_t tp_hist_count_le(const tp_hist_t *h, uint64_t ns);

/* Mean in ns: the exact sum / total (clamped values as TP_HIST_HIGHEST), where
 * HdrHistogram, having no sum, uses bucket midpoints. 0 when empty. */
double tp_hist_mean(const tp_hist_t *h);

/* Population standard deviation in ns of the bucket midpoints (HdrHistogram's
 * median equivalent values) about tp_hist_mean(). 0 when empty. */
double tp_hist_stddev(const tp_hist_t *h);

/* Writes h as an HdrHistogram percentile distribution (.hgrm, the text Java's
 * outputPercentileDistribution(out, 5, unit_divisor) prints, which plotFiles.html
 * and hdr-plot read): the header line, a blank line, one row per percentile tick
 * (5 ticks per halving of the distance to 100 %) and a last row at percentile
 * 1.0, then the Mean/StdDeviation, Max/Total count and Buckets/SubBuckets footer.
 * Values are divided by unit_divisor (1000.0 for microseconds). Footer Max is the
 * true h->max, where HdrHistogram prints the top of its bucket. An empty h gives
 * the header and a footer of zeros, no rows (as HdrHistogram does). The stream is
 * flushed, so a full disk shows here.
 * Returns 0, TP_EINVAL if unit_divisor is not a positive number, TP_EIO if a
 * write failed. */
int tp_hist_write_hgrm(const tp_hist_t *h, FILE *f, double unit_divisor);

#ifdef __cplusplus
}
#endif

#endif
