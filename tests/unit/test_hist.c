/* Unit tests of the latency histogram (tp/hist.h): bucket geometry and edges,
 * percentiles of known distributions, overflow clamping, record_n, merge, reset,
 * the Prometheus-style cumulative counts and the .hgrm text.
 *
 * Expected values are literals worked out from the bucket widths (explained at
 * each test). They were also checked once against an independent implementation,
 * HdrHistogram's JavaScript port (hdr-histogram-js 3.0.1, same 1 / 60e9 / 3
 * configuration), which agrees on every equivalent value and percentile below and
 * printed the .hgrm text of hgrm_small_known_input byte for byte. */
#include "tp/error.h"
#include "tp/hist.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tp_hist_t is ~216 KiB: tests keep it on the heap as real callers would. */
static tp_hist_t *new_hist(void) {
    tp_hist_t *h = malloc(sizeof(*h));
    cr_assert_not_null(h);
    memset(h, 0xa5, sizeof(*h)); /* garbage: tp_hist_reset() must be a full init */
    tp_hist_reset(h);
    return h;
}

static void assert_same(const tp_hist_t *a, const tp_hist_t *b, const char *what) {
    cr_assert(memcmp(a, b, sizeof(*a)) == 0, "%s: histograms differ", what);
}

static void assert_equivalents(uint64_t v, uint64_t lo, uint64_t hi) {
    cr_assert_eq(tp_hist_lowest_equivalent(v), lo, "lowest_equivalent(%" PRIu64 ") = %" PRIu64, v,
                 tp_hist_lowest_equivalent(v));
    cr_assert_eq(tp_hist_highest_equivalent(v), hi, "highest_equivalent(%" PRIu64 ") = %" PRIu64, v,
                 tp_hist_highest_equivalent(v));
}

static void assert_pct(const tp_hist_t *h, double pct, uint64_t expect) {
    uint64_t got = tp_hist_percentile(h, pct);
    cr_assert_eq(got, expect, "p%g = %" PRIu64 ", expected %" PRIu64, pct, got, expect);
}

static void assert_le(const tp_hist_t *h, uint64_t ns, uint64_t expect) {
    uint64_t got = tp_hist_count_le(h, ns);
    cr_assert_eq(got, expect, "count_le(%" PRIu64 ") = %" PRIu64 ", expected %" PRIu64, ns, got,
                 expect);
}

/* The .hgrm text of h (divisor div) as a malloc'd string; the write must succeed. */
static char *hgrm_text(const tp_hist_t *h, double div) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(tp_hist_write_hgrm(h, f, div), 0);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

static const char HGRM_HEADER[] = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";

/* ---- geometry ------------------------------------------------------------------------------ */

Test(hist, geometry_constants) {
    cr_assert_eq(TP_HIST_SUB_BUCKETS, 2048);
    cr_assert_eq(TP_HIST_SUB_BUCKET_HALF, 1024);
    cr_assert_eq(TP_HIST_BUCKETS, 26);
    cr_assert_eq(TP_HIST_COUNTS, 27648);
    cr_assert_eq(sizeof(tp_hist_t), (5 + 27648) * sizeof(uint64_t), "no padding, no extra fields");
    /* The largest index any recordable value can reach is in range: 60 s sits in
     * bucket 25 (width 2^25) at sub-bucket 60e9 >> 25 = 1788. */
    cr_assert_eq(tp__hist_index(TP_HIST_HIGHEST), 25 * 1024 + 1788);
    cr_assert_eq(tp__hist_index((UINT64_C(1) << 36) - 1), TP_HIST_COUNTS - 1);
}

Test(hist, values_below_2048_are_exact) {
    tp_hist_t *h = new_hist();
    for (uint64_t v = 0; v < 2048; v++) {
        cr_assert_eq(tp__hist_index(v), v, "each value below 2048 has its own bucket");
        assert_equivalents(v, v, v);
        tp_hist_record(h, v);
    }
    /* One value per bucket: the cumulative count at v is v + 1 for every v. */
    for (uint64_t v = 0; v < 2048; v++)
        assert_le(h, v, v + 1);
    free(h);
}

Test(hist, bucket_edges) {
    /* Bucket 1 holds [2048, 4096) at width 2, bucket 2 [4096, 8192) at width 4, ... */
    assert_equivalents(2047, 2047, 2047);
    assert_equivalents(2048, 2048, 2049);
    assert_equivalents(2049, 2048, 2049);
    assert_equivalents(2050, 2050, 2051);
    assert_equivalents(4095, 4094, 4095);
    assert_equivalents(4096, 4096, 4099);
    assert_equivalents(4097, 4096, 4099);
    assert_equivalents(4099, 4096, 4099);
    assert_equivalents(4100, 4100, 4103);
    assert_equivalents(8192, 8192, 8199);
    /* 1 ms: [2^19, 2^20) is bucket 9, width 512; 1e6 = 1953.125 * 512. */
    assert_equivalents(1000000, 999936, 1000447);
    /* 60 s: [2^35, 2^36) is bucket 25, width 2^25 = 33554432; 60e9 = 1788.14 * 2^25. */
    assert_equivalents(UINT64_C(60000000000), UINT64_C(59995324416), UINT64_C(60028878847));
    /* The top of the array: 2^36 - 1, still bucket 25. */
    assert_equivalents((UINT64_C(1) << 36) - 1, UINT64_C(68685922304), UINT64_C(68719476735));
    /* The helpers are pure geometry over all of uint64_t: UINT64_MAX is in
     * bucket 53, sub-bucket 2047. */
    assert_equivalents(UINT64_MAX, UINT64_C(2047) << 53, UINT64_MAX);

    cr_assert_eq(tp__hist_index(2048), tp__hist_index(2049));
    cr_assert_eq(tp__hist_index(2050), tp__hist_index(2048) + 1);
    cr_assert_eq(tp__hist_index(4096), tp__hist_index(4099));
    cr_assert_eq(tp__hist_index(4100), tp__hist_index(4096) + 1);
}

Test(hist, index_is_contiguous_and_within_0_1_percent) {
    /* Walk every bucket edge up to the top of the array: consecutive buckets have
     * consecutive indices, all values of a bucket share one index, and a bucket's
     * width is never more than 1/1024 of its lowest value (3 significant digits). */
    uint64_t v = 0;
    uint32_t expect = 0;
    while (v < (UINT64_C(1) << 36)) {
        uint64_t lo = tp_hist_lowest_equivalent(v), hi = tp_hist_highest_equivalent(v);
        cr_assert_eq(lo, v);
        cr_assert_eq(tp__hist_index(lo), expect, "value %" PRIu64, v);
        cr_assert_eq(tp__hist_index(hi), expect, "value %" PRIu64, hi);
        if (lo >= 2048)
            cr_assert_leq((hi - lo + 1) * 1024, lo, "bucket at %" PRIu64 " too wide", lo);
        v = hi + 1;
        expect++;
    }
    cr_assert_eq(expect, TP_HIST_COUNTS, "every index is used exactly once");
}

/* ---- percentiles --------------------------------------------------------------------------- */

Test(hist, percentiles_of_1_to_10000) {
    tp_hist_t *h = new_hist();
    for (uint64_t v = 1; v <= 10000; v++)
        tp_hist_record(h, v);
    /* Every value is recorded once, so the cumulative count at the end of a bucket
     * is the bucket's top value (capped at 10000), and the bucket where the count
     * reaches rank r is the one holding the value r. The answer is that bucket's
     * highest equivalent value:
     *   p50:   rank 5000, in [4096, 8192) width 4: 5000..5003   -> 5003
     *   p90:   rank 9000, in [8192, 16384) width 8: 9000..9007  -> 9007
     *   p99:   rank 9900, width 8: 9896..9903                    -> 9903
     *   p99.9: rank 9990 (not 9991: 99.9 is inexact in binary), 9984..9991 -> 9991
     *   p99.99: rank 9999, 9992..9999                            -> 9999
     *   p100:  rank 10000, 10000..10007                          -> 10007
     *   p25:   rank 2500, in [2048, 4096) width 2: 2500..2501   -> 2501
     *   p0:    rank 1, bucket of 1 (width 1), lowest equivalent -> 1 */
    assert_pct(h, 0, 1);
    assert_pct(h, 25, 2501);
    assert_pct(h, 50, 5003);
    assert_pct(h, 90, 9007);
    assert_pct(h, 99, 9903);
    assert_pct(h, 99.9, 9991);
    assert_pct(h, 99.99, 9999);
    assert_pct(h, 100, 10007);
    /* Ranks round up: 0.01 % of 10000 is rank 1, 0.011 % is rank 1.1 -> 2. */
    assert_pct(h, 0.01, 1);
    assert_pct(h, 0.011, 2);
    cr_assert_eq(h->total, 10000);
    cr_assert_eq(h->min, 1);
    cr_assert_eq(h->max, 10000);
    cr_assert_eq(h->sum, UINT64_C(50005000));
    cr_assert_eq(h->overflow, 0);
    free(h);
}

Test(hist, percentiles_of_bimodal) {
    tp_hist_t *h = new_hist();
    /* 9000 fast (1 us, exact) and 1000 slow (5 ms, in [2^22, 2^23): width 4096,
     * 5000000 = 1220.7 * 4096, so its bucket is 4997120..5001215). */
    for (int i = 0; i < 9000; i++)
        tp_hist_record(h, 1000);
    for (int i = 0; i < 1000; i++)
        tp_hist_record(h, 5000000);
    assert_pct(h, 0, 1000);
    assert_pct(h, 50, 1000);
    assert_pct(h, 90, 1000);       /* rank 9000: the last fast one */
    assert_pct(h, 90.01, 5001215); /* rank 9001: the first slow one */
    assert_pct(h, 99, 5001215);
    assert_pct(h, 100, 5001215);
    cr_assert_float_eq(tp_hist_mean(h), 500900.0, 1e-6); /* (9e6 + 5e9) / 1e4 */
    assert_le(h, 999, 0);
    assert_le(h, 1000, 9000);
    assert_le(h, 5000000, 9000); /* its bucket reaches past 5000000 */
    assert_le(h, 5001214, 9000);
    assert_le(h, 5001215, 10000);
    free(h);
}

Test(hist, percentile_argument_is_clamped) {
    tp_hist_t *h = new_hist();
    for (uint64_t v = 1; v <= 100; v++)
        tp_hist_record(h, v);
    assert_pct(h, -5, 1);
    assert_pct(h, 0, 1);
    assert_pct(h, 150, 100);
    assert_pct(h, 100, 100);
    assert_pct(h, NAN, 1);
    free(h);
}

Test(hist, percentile_rank_ignores_float_noise) {
    tp_hist_t *h = new_hist();
    for (uint64_t v = 1; v <= 1000; v++)
        tp_hist_record(h, v); /* each value in a bucket of its own */
    /* 99.9 / 100 * 1000 computes as 999.0000000000001: a plain ceil() would make the
     * rank 1000 and the answer 1000. The intended rank is 999. */
    assert_pct(h, 99.9, 999);
    assert_pct(h, 33.3, 333);
    assert_pct(h, 0.1, 1);
    assert_pct(h, 99.91, 1000); /* rank 999.1 -> 1000: a real fraction still rounds up */
    free(h);
}

Test(hist, percentile_zero_is_lowest_equivalent) {
    tp_hist_t *h = new_hist();
    tp_hist_record(h, 4098); /* bucket 4096..4099 */
    assert_pct(h, 0, 4096);
    assert_pct(h, 0.0001, 4099);
    assert_pct(h, 100, 4099);
    free(h);
}

Test(hist, record_n_equals_n_records) {
    tp_hist_t *a = new_hist(), *b = new_hist();
    const uint64_t values[] = {0, 1, 2049, 123456789, UINT64_C(60000000000), UINT64_C(61000000000)};
    for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
        tp_hist_record_n(a, values[k], 7);
        for (int i = 0; i < 7; i++)
            tp_hist_record(b, values[k]);
    }
    assert_same(a, b, "record_n vs record");
    cr_assert_eq(a->total, 42);
    cr_assert_eq(a->overflow, 7);

    /* n = 0 records nothing: not even min or max move. */
    tp_hist_t *c = new_hist(), *empty = new_hist();
    tp_hist_record_n(c, 5, 0);
    assert_same(c, empty, "record_n with n = 0");
    free(a);
    free(b);
    free(c);
    free(empty);
}

/* ---- overflow ------------------------------------------------------------------------------ */

Test(hist, overflow_is_clamped_and_counted) {
    tp_hist_t *h = new_hist();
    tp_hist_record(h, 1000);
    tp_hist_record(h, UINT64_C(60000000000)); /* exactly 60 s: in range */
    cr_assert_eq(h->overflow, 0);
    tp_hist_record(h, UINT64_C(61000000000));
    tp_hist_record(h, UINT64_MAX);

    cr_assert_eq(h->total, 4);
    cr_assert_eq(h->overflow, 2);
    cr_assert_eq(h->min, 1000);
    cr_assert_eq(h->max, UINT64_MAX, "max keeps the true value");
    /* sum adds the clamped value: 1000 + 3 * 60e9 (and cannot wrap on UINT64_MAX). */
    cr_assert_eq(h->sum, UINT64_C(1000) + 3 * UINT64_C(60000000000));
    /* The overflowed values sit in 60 s's bucket with the in-range 60 s. */
    cr_assert_eq(h->counts[tp__hist_index(TP_HIST_HIGHEST)], 3);
    assert_pct(h, 25, 1000);
    assert_pct(h, 50, UINT64_C(60028878847));
    assert_pct(h, 100, UINT64_C(60028878847)); /* the top of 60 s's bucket, not max */
    assert_le(h, UINT64_C(60000000000), 1);
    assert_le(h, UINT64_C(60028878846), 1);
    assert_le(h, UINT64_C(60028878847), 4);
    assert_le(h, UINT64_MAX, 4);
    free(h);
}

Test(hist, only_overflow) {
    tp_hist_t *h = new_hist();
    tp_hist_record(h, UINT64_C(70000000000));
    cr_assert_eq(h->min, UINT64_C(70000000000), "min keeps the true value too");
    cr_assert_eq(h->max, UINT64_C(70000000000));
    cr_assert_eq(h->sum, TP_HIST_HIGHEST);
    cr_assert_float_eq(tp_hist_mean(h), 60e9, 1e-3);
    assert_pct(h, 0, UINT64_C(59995324416));
    assert_pct(h, 99, UINT64_C(60028878847));
    free(h);
}

/* ---- merge and reset ----------------------------------------------------------------------- */

static void record_a(tp_hist_t *h) {
    for (uint64_t v = 0; v < 5000; v += 3)
        tp_hist_record(h, v * 977);
    tp_hist_record(h, UINT64_C(61000000000));
}

static void record_b(tp_hist_t *h) {
    for (uint64_t v = 1; v < 3000; v += 7)
        tp_hist_record(h, v * v * 13);
    tp_hist_record_n(h, 2049, 5);
    tp_hist_record(h, UINT64_MAX);
}

Test(hist, merge_equals_recording_into_one) {
    tp_hist_t *a = new_hist(), *b = new_hist(), *all = new_hist();
    record_a(a);
    record_b(b);
    record_a(all);
    record_b(all);
    tp_hist_merge(a, b);
    assert_same(a, all, "merge(a, b) vs one histogram");

    /* Merging into or from an empty histogram. */
    tp_hist_t *e = new_hist(), *e2 = new_hist();
    tp_hist_merge(e, all);
    assert_same(e, all, "merge into empty");
    tp_hist_merge(all, e2);
    assert_same(e, all, "merge of empty");
    free(a);
    free(b);
    free(all);
    free(e);
    free(e2);
}

Test(hist, reset_returns_to_empty) {
    tp_hist_t *h = new_hist();
    cr_assert_eq(h->total, 0);
    cr_assert_eq(h->min, UINT64_MAX);
    cr_assert_eq(h->max, 0);
    cr_assert_eq(h->sum, 0);
    cr_assert_eq(h->overflow, 0);
    tp_hist_t *fresh = calloc(1, sizeof(*fresh));
    cr_assert_not_null(fresh);
    tp_hist_reset(fresh);
    assert_same(h, fresh, "reset of garbage vs reset of zeroes");

    record_a(h);
    record_b(h);
    tp_hist_reset(h);
    assert_same(h, fresh, "reset after use");
    free(h);
    free(fresh);
}

/* ---- count_le ------------------------------------------------------------------------------ */

Test(hist, count_le_around_bucket_edges) {
    tp_hist_t *h = new_hist();
    const uint64_t values[] = {0, 2047, 2048, 2049, 2050, 4095, 4096, 4099, 4100};
    for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++)
        tp_hist_record(h, values[k]);
    assert_le(h, 0, 1);
    assert_le(h, 2046, 1);
    assert_le(h, 2047, 2);
    assert_le(h, 2048, 2); /* 2048's bucket is 2048..2049: not wholly <= 2048 */
    assert_le(h, 2049, 4);
    assert_le(h, 2050, 4);
    assert_le(h, 2051, 5);
    assert_le(h, 4094, 5);
    assert_le(h, 4095, 6);
    assert_le(h, 4096, 6);
    assert_le(h, 4098, 6);
    assert_le(h, 4099, 8);
    assert_le(h, 4102, 8);
    assert_le(h, 4103, 9);
    assert_le(h, UINT64_C(1000000000), 9);
    assert_le(h, UINT64_MAX, 9);
    free(h);
}

/* ---- mean and standard deviation ----------------------------------------------------------- */

Test(hist, mean_and_stddev) {
    tp_hist_t *h = new_hist();
    for (uint64_t v = 100; v <= 1000; v += 100)
        tp_hist_record(h, v);
    /* All below 2048, so exact: mean 550, population variance 82500. */
    cr_assert_float_eq(tp_hist_mean(h), 550.0, 1e-12);
    cr_assert_float_eq(tp_hist_stddev(h), 287.22813232690143, 1e-9);

    /* A wide bucket: 5000000 is in 4997120..5001215 (width 4096). The mean is the
     * exact sum / total, where HdrHistogram would give the bucket midpoint
     * 4997120 + 2048 = 4999168; the deviation is taken of that midpoint about the
     * exact mean, so three equal values show the bucket's offset, 832. */
    tp_hist_reset(h);
    tp_hist_record_n(h, 5000000, 3);
    cr_assert_float_eq(tp_hist_mean(h), 5000000.0, 1e-9);
    cr_assert_float_eq(tp_hist_stddev(h), 832.0, 1e-6);
    free(h);
}

/* ---- empty --------------------------------------------------------------------------------- */

Test(hist, empty_histogram) {
    tp_hist_t *h = new_hist();
    assert_pct(h, 0, 0);
    assert_pct(h, 50, 0);
    assert_pct(h, 100, 0);
    assert_le(h, UINT64_MAX, 0);
    cr_assert_eq(tp_hist_mean(h), 0.0);
    cr_assert_eq(tp_hist_stddev(h), 0.0);
    /* HdrHistogram prints the header and a footer of zeros, no rows. */
    char *text = hgrm_text(h, 1000.0);
    cr_assert_str_eq(text, "       Value     Percentile TotalCount 1/(1-Percentile)\n"
                           "\n"
                           "#[Mean    =        0.000, StdDeviation   =        0.000]\n"
                           "#[Max     =        0.000, Total count    =            0]\n"
                           "#[Buckets =           26, SubBuckets     =         2048]\n");
    free(text);
    free(h);
}

/* ---- .hgrm --------------------------------------------------------------------------------- */

Test(hist, hgrm_small_known_input) {
    tp_hist_t *h = new_hist();
    for (uint64_t v = 100; v <= 1000; v += 100)
        tp_hist_record(h, v);
    /* Ten exact values, in microseconds. Rows come at percentile levels 0, 10, ..,
     * 50, then 5 ticks per half distance: 55, 60, .., 75, 77.5, .., 87.5, 88.75,
     * 90, 91.25; each row shows the first value whose cumulative share reaches the
     * level (the same value repeats when it passes several levels), and the last
     * row is the maximum at percentile 1 without the infinite last column. */
    char *text = hgrm_text(h, 1000.0);
    cr_assert_str_eq(text, "       Value     Percentile TotalCount 1/(1-Percentile)\n"
                           "\n"
                           "       0.100 0.000000000000          1           1.00\n"
                           "       0.100 0.100000000000          1           1.11\n"
                           "       0.200 0.200000000000          2           1.25\n"
                           "       0.300 0.300000000000          3           1.43\n"
                           "       0.400 0.400000000000          4           1.67\n"
                           "       0.500 0.500000000000          5           2.00\n"
                           "       0.600 0.550000000000          6           2.22\n"
                           "       0.600 0.600000000000          6           2.50\n"
                           "       0.700 0.650000000000          7           2.86\n"
                           "       0.700 0.700000000000          7           3.33\n"
                           "       0.800 0.750000000000          8           4.00\n"
                           "       0.800 0.775000000000          8           4.44\n"
                           "       0.800 0.800000000000          8           5.00\n"
                           "       0.900 0.825000000000          9           5.71\n"
                           "       0.900 0.850000000000          9           6.67\n"
                           "       0.900 0.875000000000          9           8.00\n"
                           "       0.900 0.887500000000          9           8.89\n"
                           "       0.900 0.900000000000          9          10.00\n"
                           "       1.000 0.912500000000         10          11.43\n"
                           "       1.000 1.000000000000         10\n"
                           "#[Mean    =        0.550, StdDeviation   =        0.287]\n"
                           "#[Max     =        1.000, Total count    =           10]\n"
                           "#[Buckets =           26, SubBuckets     =         2048]\n");
    free(text);
    free(h);
}

Test(hist, hgrm_rows_are_monotonic) {
    tp_hist_t *h = new_hist();
    for (uint64_t v = 1; v <= 10000; v++)
        tp_hist_record(h, v * 1000); /* 1 us .. 10 ms */
    tp_hist_record(h, UINT64_C(61000000000));
    char *text = hgrm_text(h, 1000.0);
    cr_assert(strncmp(text, HGRM_HEADER, strlen(HGRM_HEADER)) == 0, "header");

    char *line = text + strlen(HGRM_HEADER);
    double prev_value = 0, prev_pct = -1, value = 0, pct = 0;
    uint64_t prev_count = 0, count = 0;
    int rows = 0, last_row_fields = 0;
    while (*line != '#') {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "row %d not terminated", rows);
        double inverse;
        last_row_fields = sscanf(line, "%lf %lf %" SCNu64 " %lf", &value, &pct, &count, &inverse);
        cr_assert_geq(last_row_fields, 3, "row %d: %.*s", rows, (int)(nl - line), line);
        cr_assert_geq(value, prev_value, "row %d value decreases", rows);
        cr_assert_geq(pct, prev_pct, "row %d percentile decreases", rows);
        cr_assert_geq(count, prev_count, "row %d count decreases", rows);
        prev_value = value;
        prev_pct = pct;
        prev_count = count;
        rows++;
        line = nl + 1;
    }
    cr_assert_gt(rows, 50);
    /* Level 99.97802734375 % has a 13th decimal of exactly 5; HdrHistogram (Java)
     * rounds it up. 1e7 ns is in 9994240..10002431 (width 8192). */
    cr_assert_not_null(strstr(text, "   10002.431 0.999780273438      10000        4551.11\n"));
    cr_assert_eq(last_row_fields, 3, "the last row has no 1/(1-Percentile)");
    cr_assert_eq(pct, 1.0);
    cr_assert_eq(count, 10001);
    /* The overflowed value is reported at the top of 60 s's bucket, in us. */
    cr_assert_float_eq(value, 60028878.847, 1e-6);

    /* Footer: mean is the exact sum (with the clamped 60 s) over the total, Max is
     * the true max (61 s). */
    char mean_line[128];
    snprintf(mean_line, sizeof(mean_line), "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
             tp_hist_mean(h) / 1000.0, tp_hist_stddev(h) / 1000.0);
    cr_assert_float_eq(tp_hist_mean(h), (50005000000.0 + 60e9) / 10001.0, 1e-3);
    char *footer = line;
    cr_assert(strncmp(footer, mean_line, strlen(mean_line)) == 0, "mean line: %s", footer);
    footer += strlen(mean_line);
    cr_assert_str_eq(footer, "#[Max     = 61000000.000, Total count    =        10001]\n"
                             "#[Buckets =           26, SubBuckets     =         2048]\n");
    free(text);
    free(h);
}

Test(hist, hgrm_single_value_in_nanoseconds) {
    tp_hist_t *h = new_hist();
    tp_hist_record(h, 4098);
    char *text = hgrm_text(h, 1.0);
    cr_assert_str_eq(text, "       Value     Percentile TotalCount 1/(1-Percentile)\n"
                           "\n"
                           "    4099.000 0.000000000000          1           1.00\n"
                           "    4099.000 1.000000000000          1\n"
                           "#[Mean    =     4098.000, StdDeviation   =        0.000]\n"
                           "#[Max     =     4098.000, Total count    =            1]\n"
                           "#[Buckets =           26, SubBuckets     =         2048]\n");
    free(text);
    free(h);
}

Test(hist, hgrm_errors) {
    tp_hist_t *h = new_hist();
    tp_hist_record(h, 1234);

    /* A stream that refuses writes. */
    char buf[64] = "";
    FILE *ro = fmemopen(buf, sizeof(buf), "r");
    cr_assert_not_null(ro);
    cr_assert_eq(tp_hist_write_hgrm(h, ro, 1000.0), TP_EIO);
    fclose(ro);

    /* A full device: the buffered writes succeed, the flush fails. */
    FILE *full = fopen("/dev/full", "w");
    if (full != NULL) {
        cr_assert_eq(tp_hist_write_hgrm(h, full, 1000.0), TP_EIO);
        fclose(full);
    }

    /* Nonsense unit divisors are refused before anything is written. */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert_not_null(f);
    cr_assert_eq(tp_hist_write_hgrm(h, f, 0.0), TP_EINVAL);
    cr_assert_eq(tp_hist_write_hgrm(h, f, -1.0), TP_EINVAL);
    cr_assert_eq(tp_hist_write_hgrm(h, f, NAN), TP_EINVAL);
    cr_assert_eq(tp_hist_write_hgrm(h, f, INFINITY), TP_EINVAL);
    fclose(f);
    cr_assert_eq(len, 0);
    free(out);
    free(h);
}
