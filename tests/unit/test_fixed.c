/* Unit tests of fixed-point decimal text and rounding (tp/fixed.h): exact text of
 * small, fractional and extreme values, parse round trips and rejects, and
 * rounding half away from zero. */
#include "tp/fixed.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define I128_MAX ((tp_i128)(((unsigned __int128)1 << 127) - 1))
#define I128_MIN (-I128_MAX - 1)

/* Formats v and checks the text and the returned length. */
static void assert_format(tp_i128 v, int decimals, const char *expect) {
    char buf[TP_FIXED_TEXT_MAX];
    memset(buf, 'x', sizeof(buf));
    size_t len = tp_fixed_format(v, decimals, buf);
    cr_assert_str_eq(buf, expect, "decimals %d: got \"%s\", expected \"%s\"", decimals, buf,
                     expect);
    cr_assert_eq(len, strlen(expect));
}

/* Parses s at decimals; the result must be accepted and equal expect. */
static void assert_parse(const char *s, int decimals, tp_i128 expect) {
    tp_i128 v = 12345;
    cr_assert(tp_fixed_parse(s, strlen(s), decimals, &v), "\"%s\" at %d rejected", s, decimals);
    cr_assert(v == expect, "\"%s\" at %d parsed to another value", s, decimals);
}

/* s must be rejected at decimals, leaving *out untouched. */
static void assert_reject(const char *s, size_t len, int decimals) {
    tp_i128 v = 777;
    cr_assert_not(tp_fixed_parse(s, len, decimals, &v), "\"%.*s\" at %d accepted", (int)len, s,
                  decimals);
    cr_assert(v == 777, "\"%.*s\" changed the output", (int)len, s);
}

/* The text of a 128-bit value with no decimals, to compare results too large for literals. */
static void assert_i128(tp_i128 v, const char *expect) {
    assert_format(v, 0, expect);
}

Test(fixed, format_small_values) {
    assert_format(0, 8, "0.00000000");
    assert_format(100000000, 8, "1.00000000");
    assert_format(-100000000, 8, "-1.00000000");
    assert_format(10125000000, 8, "101.25000000");
    assert_format(-10125000000, 8, "-101.25000000");
    assert_format(1, 8, "0.00000001");
    assert_format(-1, 8, "-0.00000001");
    assert_format(-50000000, 8, "-0.50000000");
    assert_format(99999999, 8, "0.99999999");
    assert_format(1234567890, 8, "12.34567890");
}

Test(fixed, format_other_decimals) {
    assert_format(0, 0, "0");
    assert_format(1, 0, "1");
    assert_format(-1, 0, "-1");
    assert_format(1234, 0, "1234");
    assert_format(1, 16, "0.0000000000000001");
    assert_format(-1, 16, "-0.0000000000000001");
    assert_format((tp_i128)12345678901234567890u, 16, "1234.5678901234567890");
    assert_format((tp_i128)10000000000000000, 16, "1.0000000000000000");
    assert_format(0, 16, "0.0000000000000000");
    assert_format(5, 1, "0.5");
    assert_format(-5, 1, "-0.5");
    assert_format(1, 30, "0.000000000000000000000000000001");
}

Test(fixed, format_extremes) {
    assert_format(I128_MAX, 0, "170141183460469231731687303715884105727");
    assert_format(I128_MIN, 0, "-170141183460469231731687303715884105728");
    assert_format(I128_MAX, 8, "1701411834604692317316873037158.84105727");
    assert_format(I128_MIN, 8, "-1701411834604692317316873037158.84105728");
    assert_format(I128_MAX, 16, "17014118346046923173168.7303715884105727");
    assert_format(I128_MIN, 30, "-170141183.460469231731687303715884105728");
    char buf[TP_FIXED_TEXT_MAX];
    cr_assert_lt(tp_fixed_format(I128_MIN, 30, buf), (size_t)TP_FIXED_TEXT_MAX);
}

/* Formatting takes 64-bit steps below 2^64 and 128-bit ones above: the seam is exact. */
Test(fixed, format_across_64_bits) {
    const tp_i128 two64 = (tp_i128)1 << 64;
    assert_format(two64 - 1, 0, "18446744073709551615");
    assert_format(two64, 0, "18446744073709551616");
    assert_format(two64 + 1, 0, "18446744073709551617");
    assert_format(-(two64 - 1), 8, "-184467440737.09551615");
    assert_format(-two64, 8, "-184467440737.09551616");
    assert_format(two64 * 10, 20, "1.84467440737095516160");
    assert_format(two64, 25, "0.0000018446744073709551616");
    assert_format((tp_i128)10000000000000000000ull * 10, 0, "100000000000000000000");
    assert_format(INT64_MIN, 8, "-92233720368.54775808");
}

Test(fixed, parse_exact_values) {
    assert_parse("0", 8, 0);
    assert_parse("0.00000000", 8, 0);
    assert_parse("-0", 8, 0);
    assert_parse("1", 8, 100000000);
    assert_parse("-1", 8, -100000000);
    assert_parse("+3", 8, 300000000);
    assert_parse("1.5", 8, 150000000);
    assert_parse("-0.5", 8, -50000000);
    assert_parse("101.25000000", 8, 10125000000);
    assert_parse("0.00000001", 8, 1);
    assert_parse("-0.00000001", 8, -1);
    assert_parse("007.10", 8, 710000000);
    assert_parse("42", 0, 42);
    assert_parse("-42", 0, -42);
    assert_parse("1234.5678901234567890", 16, (tp_i128)12345678901234567890u);
    assert_parse("0.0000000000000001", 16, 1);
}

Test(fixed, parse_extremes) {
    assert_parse("170141183460469231731687303715884105727", 0, I128_MAX);
    assert_parse("-170141183460469231731687303715884105728", 0, I128_MIN);
    assert_parse("1701411834604692317316873037158.84105727", 8, I128_MAX);
    assert_parse("-1701411834604692317316873037158.84105728", 8, I128_MIN);
    /* Scaling up to the decimals may reach the limit too. */
    tp_i128 v;
    const char *whole = "1701411834604692317316873037158";
    cr_assert(tp_fixed_parse(whole, strlen(whole), 8, &v));
    assert_i128(v, "170141183460469231731687303715800000000");
}

/* One past either end of int128 does not fit, whether in the digits or the scaling. */
Test(fixed, parse_rejects_overflow) {
    const char *bad[] = {
        "170141183460469231731687303715884105728",  "-170141183460469231731687303715884105729",
        "1701411834604692317316873037158.84105728", "-1701411834604692317316873037158.84105729",
        "1701411834604692317316873037159",          "-1701411834604692317316873037159",
        "1000000000000000000000000000000000000000", "99999999999999999999999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_reject(bad[i], strlen(bad[i]), i < 2 ? 0 : 8);
    assert_reject("170141183460469231731687303715884105728", 39, 0);
}

Test(fixed, parse_rejects_malformed) {
    const char *bad[] = {"",      "-",   "+",    ".",   "-.",  "+.",   "1.2.3", "1e5",
                         " 1",    "1 ",  "1 .5", "- 1", "--1", "+-1",  "1-",    "0x10",
                         "1,5",   "１",  "abc",  "1..", "..1", "1.5x", "\t1",   "1_000",
                         "+1.2+", "NaN", "inf",  "1/2", "١",   "1.-5", "1.+5",  "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_reject(bad[i], strlen(bad[i]), 8);
    /* The length bounds the text: a NUL inside it is a bad character, and the
     * bytes after it are never read. */
    assert_reject("1\0", 2, 8);
    assert_reject("12", 0, 8);
    tp_i128 v;
    cr_assert(tp_fixed_parse("12x", 2, 8, &v));
    cr_assert(v == 1200000000);
}

Test(fixed, parse_rejects_too_many_decimals) {
    assert_reject("1.123456789", 11, 8);
    assert_reject("0.000000001", 11, 8);
    assert_reject("1.000000000", 11, 8);
    assert_reject("1.0", 3, 0);
    assert_reject("0.00000000000000001", 19, 16);
    assert_parse("1.12345678", 8, 112345678);
}

/* splitmix64: a fixed sequence, so a failure can be reproduced. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Whatever format writes, parse reads back to the same value, at every width. */
Test(fixed, format_parse_round_trip) {
    uint64_t rng = 42;
    for (int i = 0; i < 20000; i++) {
        unsigned __int128 bits = (unsigned __int128)next_random(&rng) << 64 | next_random(&rng);
        /* Vary the magnitude too, so short and long texts both occur. */
        bits >>= next_random(&rng) % 128;
        tp_i128 v = (tp_i128)(bits >> 1);
        if (next_random(&rng) & 1)
            v = -v - (tp_i128)(next_random(&rng) & 1);
        int decimals = (int)(next_random(&rng) % 31);
        char buf[TP_FIXED_TEXT_MAX];
        size_t len = tp_fixed_format(v, decimals, buf);
        tp_i128 back = 0;
        cr_assert(tp_fixed_parse(buf, len, decimals, &back), "\"%s\" at %d rejected", buf,
                  decimals);
        cr_assert(back == v, "\"%s\" at %d came back different", buf, decimals);
    }
}

/* Fewer fractional digits than decimals mean the same as trailing zeros. */
Test(fixed, parse_short_fractions_random) {
    uint64_t rng = 7;
    for (int i = 0; i < 5000; i++) {
        int64_t units = (int64_t)(next_random(&rng) >> 20) - (INT64_C(1) << 43);
        int digits = (int)(next_random(&rng) % 9); /* 0..8 fractional digits */
        int64_t frac = 0;
        for (int d = 0; d < digits; d++)
            frac = frac * 10 + (int64_t)(next_random(&rng) % 10);
        char text[64];
        const char *sign = units < 0 ? "-" : "";
        long long whole = (long long)(units < 0 ? -units : units);
        int n = digits == 0 ? snprintf(text, sizeof(text), "%s%lld", sign, whole)
                            : snprintf(text, sizeof(text), "%s%lld.%0*lld", sign, whole, digits,
                                       (long long)frac);
        tp_i128 scaled = frac;
        for (int d = digits; d < 8; d++)
            scaled *= 10;
        tp_i128 mag = (tp_i128)(units < 0 ? -units : units) * 100000000 + scaled;
        tp_i128 expect = units < 0 ? -mag : mag;
        tp_i128 v;
        cr_assert(tp_fixed_parse(text, (size_t)n, 8, &v), "\"%.*s\" rejected", n, text);
        cr_assert(v == expect, "\"%.*s\" parsed to another value", n, text);
    }
}

Test(fixed, round_half_away_from_zero) {
    struct {
        tp_i128 v;
        int shift;
        tp_i128 expect;
    } cases[] = {
        {0, 8, 0},           {15, 1, 2},        {14, 1, 1},          {16, 1, 2},
        {-15, 1, -2},        {-14, 1, -1},      {-16, 1, -2},        {25, 1, 3},
        {-25, 1, -3},        {5, 1, 1},         {-5, 1, -1},         {4, 1, 0},
        {-4, 1, 0},          {150000000, 8, 2}, {149999999, 8, 1},   {-150000000, 8, -2},
        {-149999999, 8, -1}, {50000000, 8, 1},  {-50000000, 8, -1},  {49999999, 8, 0},
        {-49999999, 8, 0},   {250000000, 8, 3}, {-250000000, 8, -3}, {200000000, 8, 2},
        {-200000000, 8, -2}, {123, 0, 123},     {-123, 0, -123},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tp_i128 got = tp_fixed_round(cases[i].v, cases[i].shift);
        cr_assert(got == cases[i].expect, "case %zu: got %lld, expected %lld", i, (long long)got,
                  (long long)cases[i].expect);
    }
    /* 16 -> 8 decimals, the cost-to-price step. */
    cr_assert(tp_fixed_round((tp_i128)12345678950000000, 8) == 123456790);
    cr_assert(tp_fixed_round((tp_i128)-12345678950000000, 8) == -123456790);
    cr_assert(tp_fixed_round((tp_i128)12345678949999999, 8) == 123456789);
}

Test(fixed, round_extremes) {
    assert_i128(tp_fixed_round(I128_MAX, 1), "17014118346046923173168730371588410573");
    assert_i128(tp_fixed_round(I128_MIN, 1), "-17014118346046923173168730371588410573");
    assert_i128(tp_fixed_round(I128_MAX, 30), "170141183");
    assert_i128(tp_fixed_round(I128_MIN, 30), "-170141183");
    assert_i128(tp_fixed_round(I128_MAX, 0), "170141183460469231731687303715884105727");
    tp_i128 half = 5;
    for (int i = 0; i < 29; i++)
        half *= 10; /* 0.5 at shift 30 */
    cr_assert(tp_fixed_round(half, 30) == 1);
    cr_assert(tp_fixed_round(-half, 30) == -1);
    cr_assert(tp_fixed_round(half - 1, 30) == 0);
}

Test(fixed, div_round_signs_and_halves) {
    struct {
        tp_i128 num, den, expect;
    } cases[] = {
        {7, 2, 4},      {-7, 2, -4},    {7, -2, -4},    {-7, -2, 4},   {5, 3, 2},
        {-5, 3, -2},    {5, -3, -2},    {-5, -3, 2},    {4, 3, 1},     {-4, 3, -1},
        {4, -3, -1},    {1, 3, 0},      {-1, 3, 0},     {1, -3, 0},    {1, 2, 1},
        {-1, 2, -1},    {1, -2, -1},    {-1, -2, 1},    {0, 5, 0},     {0, -5, 0},
        {6, 3, 2},      {-6, -3, 2},    {6, -3, -2},    {3, 2, 2},     {5, 2, 3},
        {-5, 2, -3},    {9, 1, 9},      {9, -1, -9},    {49, 100, 0},  {50, 100, 1},
        {-50, 100, -1}, {50, -100, -1}, {-51, -100, 1}, {149, 100, 1}, {150, -100, -2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tp_i128 got = tp_fixed_div_round(cases[i].num, cases[i].den);
        cr_assert(got == cases[i].expect, "case %zu: %lld / %lld got %lld, expected %lld", i,
                  (long long)cases[i].num, (long long)cases[i].den, (long long)got,
                  (long long)cases[i].expect);
    }
}

/* Denominators and numerators near the ends of int128: no overflow in the
 * half-way test, and INT128_MIN's magnitude is handled. */
Test(fixed, div_round_extremes) {
    tp_i128 two126 = (tp_i128)1 << 126;
    cr_assert(tp_fixed_div_round(two126, I128_MAX) == 1);
    cr_assert(tp_fixed_div_round(two126 - 1, I128_MAX) == 0);
    cr_assert(tp_fixed_div_round(-two126, I128_MAX) == -1);
    cr_assert(tp_fixed_div_round(two126, I128_MIN) == -1); /* exactly -0.5 */
    cr_assert(tp_fixed_div_round(two126 - 1, I128_MIN) == 0);
    cr_assert(tp_fixed_div_round(I128_MIN, I128_MIN) == 1);
    cr_assert(tp_fixed_div_round(I128_MAX, I128_MIN) == -1);
    cr_assert(tp_fixed_div_round(I128_MIN, I128_MAX) == -1);
    cr_assert(tp_fixed_div_round(I128_MIN, 1) == I128_MIN);
    cr_assert(tp_fixed_div_round(I128_MAX, -1) == -I128_MAX);
    assert_i128(tp_fixed_div_round(I128_MIN, -2), "85070591730234615865843651857942052864");
    assert_i128(tp_fixed_div_round(I128_MIN, 3), "-56713727820156410577229101238628035243");
    assert_i128(tp_fixed_div_round(I128_MAX, -7), "-24305883351495604533098186245126300818");
}

/* Against the definition, on values small enough for exact checks: |num - q*den|
 * is at most |den| / 2, and a tie goes away from zero. */
Test(fixed, div_round_random) {
    uint64_t rng = 99;
    for (int i = 0; i < 100000; i++) {
        int64_t num = (int64_t)(next_random(&rng) >> (1 + next_random(&rng) % 60));
        int64_t den = (int64_t)(next_random(&rng) >> (1 + next_random(&rng) % 62));
        if (den == 0)
            den = 1;
        if (next_random(&rng) & 1)
            num = -num;
        if (next_random(&rng) & 1)
            den = -den;
        tp_i128 q = tp_fixed_div_round(num, den);
        tp_i128 err = (tp_i128)num - q * den; /* what rounding left over */
        tp_i128 aerr = err < 0 ? -err : err, aden = den < 0 ? -(tp_i128)den : den;
        cr_assert(2 * aerr <= aden, "%lld / %lld -> %lld", (long long)num, (long long)den,
                  (long long)q);
        if (2 * aerr == aden) /* a tie: the result is the one farther from zero */
            cr_assert((q < 0 ? -q : q) * aden > (num < 0 ? -(tp_i128)num : num));
    }
}
