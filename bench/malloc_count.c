#include "malloc_count.h"

#include <stdlib.h> /* the prototypes of what is replaced below */

#ifdef TP_BENCH_COUNT_MALLOC
/* Every allocation in the process goes through these (libuv, OpenSSL, hiredis
 * and the FlatBuffers builder's operator new included); glibc's own entry
 * points do the work. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
static uint64_t allocations;

void *malloc(size_t n) {
    allocations++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    allocations++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    allocations++;
    return __libc_realloc(p, n);
}

uint64_t tp_bench_allocations(void) {
    return allocations;
}

bool tp_bench_counting(void) {
    return true;
}
#else
uint64_t tp_bench_allocations(void) {
    return 0;
}

bool tp_bench_counting(void) {
    return false;
}
#endif
