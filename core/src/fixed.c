/* Fixed-point decimal text and rounding (tp/fixed.h).
 *
 * Parsing and division work on unsigned magnitudes: the signed forms cannot
 * hold the magnitude of INT128_MIN (which the formatter writes, so the parser
 * must read it back), and twice a remainder near 2^127 would overflow. */
#include "tp/fixed.h"

typedef unsigned __int128 u128;

static tp_i128 pow10_i128(int n) {
    tp_i128 p = 1;
    while (n-- > 0)
        p *= 10;
    return p;
}

static u128 magnitude(tp_i128 v) {
    return v < 0 ? -(u128)v : (u128)v;
}

/* -mag for mag <= 2^127, without converting an out-of-range value to signed. */
static tp_i128 negate(u128 mag) {
    return mag == 0 ? 0 : -(tp_i128)(mag - 1) - 1;
}

/* The digits of mag, lowest first, at least min_digits of them; returns how many. Most values
 * (every price, size and PnL of an int64) fit 64 bits, where dividing by 10 is a multiply;
 * a 128-bit division is a library call, several times slower, so it only takes the top part. */
static int digits_reversed(u128 mag, int min_digits, char *tmp) {
    int n = 0;
    while (mag > UINT64_MAX) {
        tmp[n++] = (char)('0' + (int)(mag % 10));
        mag /= 10;
    }
    uint64_t low = (uint64_t)mag;
    do {
        tmp[n++] = (char)('0' + (int)(low % 10));
        low /= 10;
    } while (low != 0 || n < min_digits);
    return n;
}

size_t tp_fixed_format(tp_i128 v, int decimals, char *buf) {
    char tmp[TP_FIXED_TEXT_MAX];
    int n = digits_reversed(magnitude(v), decimals + 1, tmp);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n > 0) {
        if (n == decimals)
            buf[len++] = '.';
        buf[len++] = tmp[--n];
    }
    buf[len] = '\0';
    return len;
}

/* *mag = *mag * 10 + d, or false when that would pass max. */
static bool push_digit(u128 *mag, unsigned d, u128 max) {
    if (*mag > (max - d) / 10)
        return false;
    *mag = *mag * 10 + d;
    return true;
}

bool tp_fixed_parse(const char *s, size_t len, int decimals, tp_i128 *out) {
    size_t i = 0;
    bool neg = len > 0 && s[0] == '-';
    if (len > 0 && (s[0] == '-' || s[0] == '+'))
        i++;
    /* A negative number may reach 2^127 (INT128_MIN), a positive one 2^127 - 1. */
    const u128 max = ((u128)1 << 127) - (neg ? 0 : 1);
    u128 mag = 0;
    int digits = 0, frac = -1;
    for (; i < len; i++) {
        if (s[i] == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (frac >= 0 && ++frac > decimals)
            return false;
        if (!push_digit(&mag, (unsigned)(s[i] - '0'), max))
            return false;
        digits++;
    }
    if (digits == 0)
        return false;
    for (int scale = decimals - (frac < 0 ? 0 : frac); scale > 0; scale--) {
        if (!push_digit(&mag, 0, max))
            return false;
    }
    *out = neg ? negate(mag) : (tp_i128)mag;
    return true;
}

/* The quotient must fit: INT128_MIN / -1 (2^127) does not, and comes back as
 * INT128_MIN. */
tp_i128 tp_fixed_div_round(tp_i128 num, tp_i128 den) {
    u128 n = magnitude(num), d = magnitude(den);
    u128 q = n / d, r = n % d;
    /* r >= d / 2 exactly, without computing 2 * r. */
    if (r >= d - r)
        q++;
    if ((num < 0) != (den < 0))
        return negate(q);
    return (tp_i128)q;
}

tp_i128 tp_fixed_round(tp_i128 v, int shift) {
    return shift == 0 ? v : tp_fixed_div_round(v, pow10_i128(shift));
}
