/* LD_PRELOAD=libtp_alloc_count.so PROGRAM: counts every malloc, calloc and realloc of PROGRAM
 * (malloc_count.c) and prints {"msg":"allocations","count":N} on stderr when it exits -- after
 * tickplane's orderly shutdown, in its JSON log. bench/run.sh compares a short and a long run
 * to get the steady-state allocations per frame. */
#include "malloc_count.h"

#include <stdio.h>
#include <unistd.h>

__attribute__((destructor)) static void report(void) {
    char line[80];
    int n = snprintf(line, sizeof(line), "{\"msg\":\"allocations\",\"count\":%llu}\n",
                     (unsigned long long)tp_bench_allocations());
    if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report to */
}
