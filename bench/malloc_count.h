/* Counts the process's allocations, for the benchmarks' "mallocs per message"
 * figures. Counting replaces malloc, which the sanitizers also replace, so in a
 * sanitizer build it is off and the count stays 0 (tp_bench_counting() says
 * which). */
#ifndef TP_BENCH_MALLOC_COUNT_H
#define TP_BENCH_MALLOC_COUNT_H

#include <stdbool.h>
#include <stdint.h>

/* malloc + calloc + realloc calls so far. */
uint64_t tp_bench_allocations(void);
bool tp_bench_counting(void);

#endif
