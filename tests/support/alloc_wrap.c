/* See alloc_wrap.h. The linker's --wrap turns the calls into these __wrap_ functions. */
#include "alloc_wrap.h"

#include <stddef.h>

unsigned long tp_test_allocations;
bool tp_test_fail_allocations;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

void *__wrap_malloc(size_t n) {
    tp_test_allocations++;
    return tp_test_fail_allocations ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
    tp_test_allocations++;
    return tp_test_fail_allocations ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
    tp_test_allocations++;
    return tp_test_fail_allocations ? NULL : __real_realloc(p, n);
}

void __wrap_free(void *p) {
    __real_free(p);
}
