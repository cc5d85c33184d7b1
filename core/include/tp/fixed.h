/* Fixed-point decimals as text, for Redis fields and JSON events.
 *
 * The wire carries prices and quantities as int64 with 8 decimals
 * (TP_WIRE_SCALE); exact cost bases are 128-bit with 16 decimals (a quantity
 * times a price). Text is always plain decimal with every fractional digit
 * written ("-101.25000000"), so a reader can parse it as an exact decimal and
 * the writer can parse its own output back without loss (warm restart). */
#ifndef TP_FIXED_H
#define TP_FIXED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* __extension__: GCC and Clang have it, ISO C does not (-Wpedantic). */
__extension__ typedef __int128 tp_i128;

/* Longest text either formatter writes, NUL included: a sign, 39 digits, a point. */
#define TP_FIXED_TEXT_MAX 48

/* Writes v / 10^decimals as text into buf (TP_FIXED_TEXT_MAX bytes) and returns
 * its length. decimals is 0..30. */
size_t tp_fixed_format(tp_i128 v, int decimals, char *buf);

/* Parses what tp_fixed_format() writes, or any decimal with at most `decimals`
 * fractional digits and an optional sign, into *out (scaled by 10^decimals).
 * Returns false for anything else, including a value that does not fit. */
bool tp_fixed_parse(const char *s, size_t len, int decimals, tp_i128 *out);

/* Rounds v / 10^shift to an integer, half away from zero (shift 0..30). */
tp_i128 tp_fixed_round(tp_i128 v, int shift);

/* Rounds num / den (den != 0) to an integer, half away from zero. */
tp_i128 tp_fixed_div_round(tp_i128 num, tp_i128 den);

#ifdef __cplusplus
}
#endif

#endif
